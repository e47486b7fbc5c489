"""Screenshots of the dashboard for the README, taken in Debian's chromium (Playwright).

    python dashboards/web/screenshots.py URL USER:PASSWORD[=NAME] ... [--out docs/screenshots]

Logs in with the form as each user (as `vigie demo` prints them) and writes `NAME.png` (or
`USER.png`) of their home page, and `--page PATH=NAME` for other pages of the first user.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("logins", nargs="+", help="USER:PASSWORD[=NAME]")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--page", action="append", default=[], help="PATH=NAME (first user)")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        for number, login in enumerate(args.logins):
            credentials, _, name = login.partition("=")
            user, _, password = credentials.partition(":")
            context = browser.new_context(viewport={"width": args.width, "height": 900})
            page = context.new_page()
            page.goto(f"{args.url}/login")
            page.fill("#username", user)
            page.fill("#password", password)
            page.click("button[type=submit]")
            page.wait_for_url("**/ui/**")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(args.out / f"{name or user}.png"), full_page=True)
            for extra in args.page if number == 0 else []:
                path, _, shot = extra.partition("=")
                page.goto(f"{args.url}{path}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(args.out / f"{shot}.png"), full_page=True)
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
