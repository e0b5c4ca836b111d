"""Apache Airflow provider for Google Veo video generation (AceData Cloud Veo API)."""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict:
    """Describe the provider to Airflow's ProvidersManager (kept import-light: it runs at every start)."""
    from veo_provider.settings import connection_form

    return {
        "package-name": "airflow-provider-veo",
        "name": "Veo (AceData Cloud)",
        "description": "Generate, upscale, extend and edit videos with Google Veo through the "
        "AceData Cloud Veo API: deferrable, exactly-once, with webhook callbacks.",
        "versions": [__version__],
        # The Providers page links here (without it, Airflow shows an unrelated URL).
        "documentation-url": "https://pypi.org/project/airflow-provider-veo/",
        # Mounts the callback receiver in the api-server at /veo (see docs/callbacks.md).
        "extra-links": ["veo_provider.links.VeoVideoLink"],
        # ``@task.veo``: TaskFlow authoring for VeoOperator.
        "task-decorators": [{"class-name": "veo_provider.decorators.veo.veo_task", "name": "veo"}],
        "plugins": [{"name": "veo_callbacks", "plugin-class": "veo_provider.plugin.VeoPlugin"}],
        "connection-types": [
            {
                "connection-type": "veo",
                "hook-class-name": "veo_provider.hooks.veo.VeoHook",
                "hook-name": "Veo (AceData Cloud)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "Base URL", "password": "API token"},
                    "placeholders": {
                        "host": "https://api.acedata.cloud",
                        "password": "AceData Cloud API token (Bearer)",
                    },
                },
                "conn-fields": connection_form(),
            }
        ],
    }
