#!/usr/bin/env python3
"""Build STAC Browser 4.0.1 into stacmirror's cache now (what `stacmirror serve` does on first use)."""

from stacmirror.serve.browser import BrowserUnavailable, build, cache_dir

if __name__ == "__main__":
    try:
        print(build(log=print))
    except BrowserUnavailable as exc:
        raise SystemExit(f"cannot build STAC Browser into {cache_dir()}: {exc}") from None
