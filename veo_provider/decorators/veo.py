"""``@task.veo``: TaskFlow authoring for VeoOperator.

The decorated function returns the prompt (a ``str``) or a dict of request fields; the
decorator's arguments are VeoOperator's. It runs in the worker at the start of each try, so it
may read XComs and the context; a retry asks the same (deterministic) function again, and the
ledger resumes the job already paid for when the request is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    DecoratedOperator,
    TaskDecorator,
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from veo_provider.models.names import REQUEST_ARGUMENTS
from veo_provider.operators.veo import VeoOperator
from veo_provider.resume_hold import with_default_retries
from veo_provider.settings import did_you_mean

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["veo_task"]

#: Keys a decorated function may return in its dict besides the request fields.
EXTRA_KEYS = ("endpoint", "extra_body")


class _VeoDecoratedOperator(DecoratedOperator, VeoOperator):
    """Calls the function for the request, then runs VeoOperator (validate, pay once, wait, download)."""

    template_fields: Sequence[str] = (*DecoratedOperator.template_fields, *VeoOperator.template_fields)
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DecoratedOperator.template_fields_renderers,
        **VeoOperator.template_fields_renderers,
    }
    custom_operator_name: str = "@task.veo"
    # The prompt is known only once the function ran: show it in "Rendered Template".
    overwrite_rtif_after_execution: bool = True

    def __init__(
        self,
        *,
        python_callable: Callable,
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("multiple_outputs", None)  # always False: see veo_task
        super().__init__(
            python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs, multiple_outputs=False, **kwargs
        )

    def execute(self, context: Context) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        self._apply(self.python_callable(*self.op_args, **kwargs))
        return VeoOperator.execute(self, context)

    def _apply(self, value: Any) -> None:
        """Set what the function returned; anything else is refused before any HTTP call."""
        from airflow.providers.common.compat.sdk import AirflowFailException

        if isinstance(value, str):
            value = {"prompt": value}
        if not isinstance(value, dict):
            raise AirflowFailException(
                f"The @task.veo function {self.python_callable.__name__}() returned a {type(value).__name__}: "
                "return the prompt (a str) or a dict of request fields such as {'prompt': ..., 'image_urls': [...]}"
            )
        allowed = (*REQUEST_ARGUMENTS, *EXTRA_KEYS)
        if unknown := sorted(set(value) - set(allowed)):
            named = ", ".join(f"{name!r}{did_you_mean(name, allowed)}" for name in unknown)
            raise AirflowFailException(
                f"The @task.veo function returned unknown field(s) {named}: use "
                f"{', '.join(allowed)}; pass other API fields in 'extra_body'"
            )
        for name, field_value in value.items():
            setattr(self, name, field_value)


def veo_task(python_callable: Callable | None = None, **kwargs: Any) -> TaskDecorator:
    """Wrap a function that returns a prompt (or request fields) into a VeoOperator task: ``@task.veo``.

    Arguments are VeoOperator's (``model``, ``output_path``, ``wait_mode``, ...). Like
    VeoOperator, it defaults to ``retries=2`` unless the task or ``default_args`` set retries.
    """
    if kwargs.get("multiple_outputs"):
        raise ValueError("@task.veo returns one dict (the VeoOperator result): multiple_outputs is not supported")
    # Explicit, or a function annotated ``-> dict`` (it returns request fields) would switch it on.
    kwargs["multiple_outputs"] = False
    kwargs = with_default_retries(kwargs)
    return task_decorator_factory(
        python_callable=python_callable, decorated_operator_class=_VeoDecoratedOperator, **kwargs
    )
