"""Extra link: a "Veo video" button on the task that opens the finished video."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator

__all__ = ["VeoVideoLink"]


class VeoVideoLink(BaseOperatorLink):
    """Links the task to its video URL (read from the task's XCom result at the end of the task)."""

    name = "Veo video"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        from airflow.providers.common.compat.sdk import XCom

        # At the end of every try segment (a deferral too) Airflow asks for the link in the worker:
        # only a succeeded task has a result, and asking for a missing XCom logs an [error] line.
        state = getattr(ti_key, "state", None)
        if state is not None and getattr(state, "value", state) != "success":
            return ""
        result = XCom.get_value(ti_key=ti_key, key="return_value")
        url = result.get("video_url") if isinstance(result, dict) else None
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""
