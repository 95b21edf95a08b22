"""The base layout's own assets: every page links the portal's icon and stylesheet, served
from the project's static files (no browser 404 for an icon, no CDN)."""

import re

from django.contrib.staticfiles import finders


def test_pages_link_an_icon_and_stylesheet_that_exist(client, db):
    html = client.get("/accounts/login/").content.decode()
    links = dict(re.findall(r'<link rel="(icon|stylesheet)" href="/static/([^"]+)"', html))
    assert set(links) == {"icon", "stylesheet"}
    for path in links.values():
        assert finders.find(path), path
    assert finders.find(links["icon"]).endswith(".svg")
