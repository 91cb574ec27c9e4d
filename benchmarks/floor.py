"""The least a script can do for the same job: the floor the real scripts are compared with.

    python benchmarks/floor.py snapshot BASE_URL OUT_FILE   # GET /tickers + /global, one file
    python benchmarks/floor.py coins BASE_URL OUT_FILE      # GET /coins, one file

No validation, no history, no atomic replace, no fsync. Sends COINPAPRIKA_API_KEY (if set) as
the Authorization header, as the real scripts do.
"""

import json
import os
import sys

import requests


def main(argv: list[str]) -> int:
    mode, base_url, out_path = argv
    base_url = base_url.rstrip("/")
    with requests.Session() as session:
        key = os.environ.get("COINPAPRIKA_API_KEY")
        if key:
            session.headers["Authorization"] = key
        if mode == "snapshot":
            tickers = session.get(f"{base_url}/tickers", timeout=60)
            tickers.raise_for_status()
            global_ = session.get(f"{base_url}/global", timeout=60)
            global_.raise_for_status()
            document = {
                "tickers": json.loads(tickers.content),
                "global": json.loads(global_.content),
            }
        elif mode == "coins":
            coins = session.get(f"{base_url}/coins", timeout=60)
            coins.raise_for_status()
            document = {"coins": json.loads(coins.content)}
        else:
            print(f"unknown mode {mode!r}", file=sys.stderr)
            return 2
    # json.dumps + one write: json.dump(obj, file) streams through the pure-Python encoder,
    # which would make the floor slower than it needs to be.
    with open(out_path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(document))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
