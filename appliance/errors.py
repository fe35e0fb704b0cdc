"""The error types: every failure a client can cause carries its HTTP status and a sentence to act on."""


class ApiError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def bad_request(detail: str) -> ApiError:
    return ApiError(400, detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, detail)


class DiskFull(ApiError):
    """The data dir's disk is full: writes answer 507 and ingest pauses until space comes back."""

    retry_after = 2.0  # seconds before a background loop looks again: resume soon after space is freed

    def __init__(self, where: str, room: str):
        super().__init__(
            507,
            f"The appliance's disk is full ({room} free in {where}): nothing was changed. Free some space"
            " there; the appliance resumes by itself.",
        )


class StartupError(Exception):
    """The appliance cannot start; the message says what to do."""
