"""Time to issue the signed period quality report over a year of one plant (target: <= 5 s).

    python -m bench.report_latency [--rows 1000000] [--days 365] [--runs 3]
                                   [--db PATH | --db-url URL]

Seeds like bench.stats_latency (the service's own ingest path; 2 products, 5 stations, lots and
serials), then asks GET /api/v1/reports/quality for the whole year as signed JSON and as signed
PDF, verifies both, prints the report's figures, and times one lot's certificate (5,000
units). --db PATH keeps (and reuses) the SQLite file.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench.stats_latency import _seeded, plant_app, plant_args
from qc.reports.signing import verify_bytes
from qc.service.database import get_session
from qc.service.documents import get_keyring

TARGET_S = 5.0
LOT = "L100"  # bench.stats_latency seeds lots of 5,000 consecutive units


def time_report(client, key: str, args: dict, runs: int,
                url: str = "/api/v1/reports/quality") -> tuple[float, bytes]:
    """Median seconds of `runs` requests (after one warm-up); returns it and the last body."""
    times, body = [], b""
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        reply = client.get(url, query_string=args, headers={"Authorization": f"Bearer {key}"})
        times.append(time.perf_counter() - t0)
        assert reply.status_code == 200, reply.get_data(as_text=True)[:300]
        body = reply.data
    return statistics.median(times[1:]), body


def print_figures(payload: dict) -> None:
    """The report's headline figures."""
    t, stab, cov = payload["stats"]["totals"], payload["stability"], payload["integrity"]["total"]
    print(f"  period {payload['period']['first_day']} .. {payload['period']['last_day']}: "
          f"{t['inspected']:,} inspected, {t['defective']:,} failed, defect rate "
          f"{t['defect_rate']:.4f}, first-pass yield {t['first_pass_yield']:.4f}")
    print(f"  {len(payload['months'])} months; {stab['out_of_control']} of {stab['subgroups']} "
          f"days out of control in {len(stab['episodes'])} episodes")
    print(f"  savings {payload['stats']['savings']['total']:,.2f}; cost with qc "
          f"{payload['cost_of_quality']['with_qc_total']:,.2f}, manual "
          f"{payload['cost_of_quality']['manual_total']:,.2f}")
    print(f"  with lot {cov['share_with_lot']:.3f}, with serial {cov['share_with_serial']:.3f}, "
          f"late {cov['late']:,}; {len(payload['model_performance'])} models")


def main() -> None:
    args = plant_args(__doc__.splitlines()[0], days=365, runs=3)
    with tempfile.TemporaryDirectory(prefix="qc-bench-") as tmp:
        root = Path(tmp)
        app = plant_app(root, args, "report")
        with app.app_context():
            key = _seeded(get_session(), root, args)
            trusted = get_keyring().public_keys()
        last = date.today()
        period = {"from": (last - timedelta(days=args.days - 1)).isoformat(),
                  "to": last.isoformat()}
        client = app.test_client()
        json_s, body = time_report(client, key, period, args.runs)
        payload = verify_bytes(body, trusted)
        pdf_s, pdf = time_report(client, key, {**period, "format": "pdf"}, args.runs)
        verify_bytes(pdf, trusted)
        lot_s, lot_pdf = time_report(client, key, {}, args.runs, f"/api/v1/lots/{LOT}/certificate")
        units = len(verify_bytes(lot_pdf, trusted)["units"])
        app.extensions["qc.db"].dispose()
    print_figures(payload)
    worst = max(json_s, pdf_s)
    print(f"lot certificate: {units:,} units, PDF {lot_s:.2f} s ({len(lot_pdf) / 1024:.0f} KiB)")
    print(f"report latency over {payload['stats']['totals']['inspected']:,} inspections: "
          f"JSON {json_s:.2f} s, PDF {pdf_s:.2f} s ({len(pdf) / 1024:.0f} KiB); "
          f"target <= {TARGET_S:.0f} s: {'OK' if worst <= TARGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
