"""The PRA-style catalog API as a discovery source: paginated, optionally per state, with sessions.

Some catalog APIs hand out a session token (``POST <session_url>`` -> ``{"token"}``) that expires
silently: the next page answers **200 with an empty list**. :func:`fetch_catalog` already refuses
an empty catalog, an empty first page and a short count; here a session is renewed once and the
query repeated when that happens, and a second empty answer fails the whole pass
(:class:`~price_pipeline.lib.discovery.catalog.CatalogError`) instead of looking like "every hospital was
removed". With ``states`` set, each state is queried on its own and every one must succeed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from price_pipeline.lib.discovery.catalog import (
    DEFAULT_REQUEST_DEADLINE_SECONDS,
    CatalogError,
    CatalogHospital,
    fetch_catalog,
    hospital_key,
)
from price_pipeline.lib.discovery.sources import CATALOG_API
from price_pipeline.lib.discovery.sources.base import Claim, ClaimFile, SourceResult
from price_pipeline.lib.fetch.http.budget import TransferBudget
from price_pipeline.lib.fetch.http.client import safe_client
from price_pipeline.lib.fetch.http.url_safety import UnsafeUrlError
from price_pipeline.settings import Settings

SOURCE = CATALOG_API


def hospital_to_claim(h: CatalogHospital) -> Claim:
    extra = h.extra or {}
    return Claim(
        source=SOURCE,
        source_id=h.id,
        name=h.name,
        ccn=h.ccn,
        ein=str(extra["ein"]).replace("-", "") if extra.get("ein") else None,
        npi=str(extra["npi"]) if extra.get("npi") else None,
        address=h.address,
        city=h.city,
        state=h.state,
        zip=h.zip,
        website=h.website,
        files=tuple(
            ClaimFile(
                url=f.url,
                format=f.format,
                size=f.size,
                sha256=f.sha256,
                retrieved_at=f.retrieved_at,
                name=f.name,
            )
            for f in h.files
        ),
        key_hint=hospital_key(h),
        text_fixes=h.text_fixes,
    )


class CatalogApiSource:
    name = SOURCE

    def __init__(
        self,
        catalog_url: str,
        *,
        states: tuple[str, ...] = (),
        session_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        user_agent: str = "price_pipeline/0.1",
        per_page: int = 500,
        sleep: Callable[[float], None] = time.sleep,
        base_delay: float = 1.0,
        settings=None,
    ):
        self.catalog_url = catalog_url
        # allow-list, request deadline (the catalog and session hosts themselves are trusted)
        self.settings = settings
        self.states = tuple(states)
        self.session_url = session_url
        # A credential: read from the environment at use, never put in resource config or logs.
        self.api_key = api_key or Settings.secrets_from_env()["catalog_api_key"]
        self.timeout = timeout
        self.user_agent = user_agent
        self.per_page = per_page
        self.sleep = sleep
        self.base_delay = base_delay
        self.sessions_opened = 0

    @classmethod
    def from_settings(cls, settings, **kw) -> CatalogApiSource:
        return cls(
            settings.catalog_url,
            states=settings.catalog_states,
            session_url=settings.catalog_session_url,
            api_key=settings.catalog_api_key,
            timeout=settings.http_timeout_seconds,
            user_agent=settings.user_agent,
            settings=settings,
            **kw,
        )

    def _client(self, token: str | None, *, follow_redirects: bool = True) -> httpx.Client:
        # httpx drops the Authorization header when a redirect leaves the catalog's origin.
        return safe_client(
            self.settings,
            trusted_urls=[self.catalog_url, self.session_url],
            timeout=self.timeout,
            user_agent=self.user_agent,
            headers={"Authorization": f"Bearer {token}"} if token else None,
            follow_redirects=follow_redirects,
            pool=2,
        )

    @property
    def _deadline(self) -> float:
        return getattr(self.settings, "request_deadline_seconds", DEFAULT_REQUEST_DEADLINE_SECONDS)

    def _open_session(self) -> str:
        body = {"api_key": self.api_key} if self.api_key else {}
        # No redirects: the API key would follow a 307/308 wherever it points.
        try:
            with (
                self._client(None, follow_redirects=False) as client,
                TransferBudget(self._deadline, what="catalog session request").active(),
            ):
                response = client.post(self.session_url, json=body)
        except UnsafeUrlError as exc:
            raise CatalogError(f"catalog session endpoint refused: {exc}") from exc
        except httpx.HTTPError as exc:
            # the class name only: the message could echo the request
            raise CatalogError(f"catalog session could not be opened: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise CatalogError(f"catalog session endpoint answered HTTP {response.status_code}")
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CatalogError("catalog session endpoint returned no token") from exc
        self.sessions_opened += 1
        return str(token)

    def _walk(self, client: httpx.Client, state: str | None) -> list[CatalogHospital]:
        return fetch_catalog(
            self.catalog_url,
            settings=self.settings,
            client=client,
            per_page=self.per_page,
            state=state,
            sleep=self.sleep,
            base_delay=self.base_delay,
        )

    def fetch(self) -> SourceResult:
        """Every hospital of the catalog as claims; raises :class:`CatalogError` on any doubt."""
        result = SourceResult(source=SOURCE)
        by_id: dict[str, CatalogHospital] = {}
        token = self._open_session() if self.session_url else None
        client = self._client(token)
        try:
            for state in self.states or (None,):
                try:
                    listed = self._walk(client, state)
                except CatalogError as first_error:
                    if not self.session_url:
                        raise
                    # An expired session looks like an empty or short catalog (or a 401/403):
                    # renew once and ask again; a second failure is a real failure.
                    client.close()
                    token = self._open_session()
                    client = self._client(token)
                    try:
                        listed = self._walk(client, state)
                    except CatalogError as exc:
                        raise CatalogError(f"{exc} (also after renewing the session: {first_error})") from exc
                    result.stats["sessions_renewed"] = result.stats.get("sessions_renewed", 0) + 1
                result.stats.setdefault("per_state", {})[state or "all"] = len(listed)
                for h in listed:
                    by_id.setdefault(h.id, h)
        finally:
            client.close()
        result.claims = [hospital_to_claim(h) for h in by_id.values()]
        result.stats["hospitals"] = len(result.claims)
        return result
