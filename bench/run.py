"""Run every benchmark and print one JSON object (``make bench``).

Each benchmark compares tradelane with a raw baseline measured in the same run on the same machine;
read the ratios, not the absolute times (CI boxes are noisy 2-core machines).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description="tradelane benchmarks")
    parser.add_argument(
        "--only",
        action="append",
        help=(
            "catalog_import | sync_engine | mirakl_offers | amazon_offers | order_intake | webhooks "
            "(repeatable)"
        ),
    )
    parser.add_argument("--rows", type=int, default=200_000, help="catalog import rows")
    parser.add_argument("--jobs", type=int, default=20_000, help="sync engine jobs")
    parser.add_argument("--products", type=int, default=100_000, help="Mirakl and Amazon offers products")
    parser.add_argument("--orders", type=int, default=5_000, help="order intake orders")
    parser.add_argument("--webhook-seconds", type=float, default=10.0, help="each open-loop webhook run")
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    selected = set(
        args.only
        or ["catalog_import", "sync_engine", "mirakl_offers", "amazon_offers", "order_intake", "webhooks"]
    )
    results: dict[str, object] = {}
    if "catalog_import" in selected:
        import bench_catalog_import

        results["catalog_import"] = bench_catalog_import.run(args.rows, None)
        if args.pg_url:  # against COPY into the same table, and the 1 % changed re-import
            results["catalog_import_postgresql"] = bench_catalog_import.run(args.rows, args.pg_url)
    if "sync_engine" in selected:
        import bench_sync_engine

        results["sync_engine"] = bench_sync_engine.run(args.jobs, args.pg_url)
    if "mirakl_offers" in selected:
        import bench_mirakl_offers

        results["mirakl_offers"] = bench_mirakl_offers.run(args.products, None)
    if "amazon_offers" in selected:
        import bench_amazon_offers

        results["amazon_offers"] = bench_amazon_offers.run(args.products, None)
    if "order_intake" in selected:
        import bench_order_intake

        results["order_intake"] = bench_order_intake.run(args.orders, None)
        pg_url = args.pg_url or bench_order_intake.DEFAULT_PG
        results["order_intake_postgresql"] = bench_order_intake.run(args.orders, pg_url)
    if "webhooks" in selected:
        import bench_webhooks

        results["webhooks"] = bench_webhooks.run((200, 500), args.webhook_seconds, args.pg_url)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
