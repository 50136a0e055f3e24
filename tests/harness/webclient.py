"""A small HTTP client for the broker's web pages, as a browser without JavaScript uses them:
it follows redirects (GET after 302/303), keeps cookies (by name, for 127.0.0.1: the broker and
the test's OpenID Connect provider), and signs in through the provider's form.
"""

from __future__ import annotations

import http.client
import re
import urllib.parse
from dataclasses import dataclass, field

CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Page:
    status: int
    url: str
    headers: dict[str, str]
    set_cookies: list[str]
    body: str

    @property
    def csrf(self) -> str:
        m = CSRF_RE.search(self.body)
        assert m, f"no CSRF token on {self.url}:\n{self.body[:2000]}"
        return m.group(1)


@dataclass
class WebClient:
    base: str
    cookies: dict[str, str] = field(default_factory=dict)
    cafile: str | None = None

    def _one(self, method: str, url: str, body: bytes | None, headers: dict) -> Page:
        u = urllib.parse.urlsplit(url)
        if u.scheme == "https":
            import ssl
            ctx = ssl.create_default_context(cafile=self.cafile)
            conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=30, context=ctx)
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        h = dict(headers)
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=h)
            r = conn.getresponse()
            raw = r.read()
            set_cookies = r.msg.get_all("Set-Cookie") or []
            for c in set_cookies:
                name, _, rest = c.partition("=")
                value = rest.split(";", 1)[0]
                if "Max-Age=0" in c:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return Page(r.status, url, {k.lower(): v for k, v in r.getheaders()}, set_cookies,
                        raw.decode("utf-8", "replace"))
        finally:
            conn.close()

    def request(self, method: str, path_or_url: str, form: dict | None = None, headers: dict | None = None,
                follow: bool = True, raw: bytes | None = None) -> Page:
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        body = raw if raw is not None else (urllib.parse.urlencode(form).encode() if form is not None else None)
        h = dict(headers or {})
        if form is not None and "Content-Type" not in h:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        page = self._one(method, url, body, h)
        hops = 0
        while follow and page.status in (301, 302, 303, 307) and hops < 10:
            url = urllib.parse.urljoin(url, page.headers["location"])
            page = self._one("GET", url, None, {})
            hops += 1
        return page

    def get(self, path: str, **kw) -> Page:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict, **kw) -> Page:
        return self.request("POST", path, form=form, headers={"Origin": self.base, **kw.pop("headers", {})}, **kw)

    def sign_in(self, sub: str, start: str = "/ui/pending") -> Page:
        """Open a page, land on the provider's form, sign in as `sub`, come back."""
        form_page = self.get(start)
        assert form_page.status == 200 and 'name="sub"' in form_page.body, (form_page.url, form_page.body[:1000])
        page = self.request("POST", form_page.url, form={"sub": sub})
        assert page.status == 200 and page.url.startswith(self.base), (page.status, page.url, page.body[:2000])
        return page
