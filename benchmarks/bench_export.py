"""make bench-export: zero_sudo_export's streaming export against Odoo's export_data, and the
export dialog's streamed XLSX and CSV against Odoo's own XLSX export.

Runs with Odoo's Python (scripts/odoo_bench.sh). One process fills res.partner with 1 000 000
contacts by SQL (each with a parent company, a country and a state: three related fields);
then, each in a fresh process, the streaming export of the first 10 000 and 1 000 000
contacts (name, parent_id.name, country_id.code, state_id.name) is written to /dev/null, and
the first 100 000 are exported in three alternated rounds by the streaming exporter and by
Odoo's ``export_data`` (medians compared). RSS growth is the highest RSS sampled during the
export minus the RSS before it.

The dialog's path: the request the export dialog posts (labels, many2one display names, a
selection, a datetime: DIALOG_FIELDS), written by the streamed XLSX for 10 000, 100 000 and
1 000 000 contacts and by the streamed CSV for 100 000 and 1 000 000, to /dev/null; at 100 000,
three alternated rounds of the streamed XLSX, the streamed CSV and Odoo's own XLSX export
(``export_data`` of the whole search, then Odoo's ExcelExport writer: what /web/export/xlsx
does) of the same rows, medians compared.
Last line: BENCH export rows_per_s=… rss_growth_mb_10k=… rss_growth_mb_1m=… queries_per_chunk=…
odoo_export_data_rss_growth_mb_100k=… xlsx_rows_per_s=… xlsx_rss_growth_mb_10k=…
xlsx_rss_growth_mb_100k=… xlsx_rss_growth_mb_1m=… csv_rows_per_s=… csv_rss_growth_mb_1m=…
odoo_xlsx_rows_per_s=… odoo_xlsx_rss_growth_mb_100k=…
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

FIELDS = ["name", "parent_id.name", "country_id.code", "state_id.name"]
ODOO_FIELDS = ["name", "parent_id/name", "country_id/code", "state_id/name"]
SIZES = (10_000, 100_000, 1_000_000)
COMPANIES = 1000
ROUNDS = 3  # the 100 000-row comparison: medians of three alternated rounds
# The dialog's columns: (field path, label, type) as ListController.downloadExport posts them.
DIALOG_FIELDS = [
    ("name", "Name", "char"),
    ("parent_id", "Related Company", "many2one"),
    ("country_id", "Country", "many2one"),
    ("state_id", "State", "many2one"),
    ("type", "Address Type", "selection"),
    ("create_date", "Created on", "datetime"),
]


def odoo_env(database: str):
    import odoo
    from odoo.modules.registry import Registry

    odoo.tools.config.parse_config(["-c", os.environ["ODOO_RC"], "-d", database])
    registry = Registry(database)
    return registry


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRss:
    """Samples this process's RSS every 10 ms while in use: Odoo's own start-up peak must not
    hide (as ru_maxrss would) what the export itself adds."""

    def __enter__(self) -> PeakRss:
        self.baseline = self.peak = current_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, current_rss_mb())

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak - self.baseline


def fill(database: str) -> None:
    from odoo import SUPERUSER_ID, api

    registry = odoo_env(database)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        belgium = env.ref("base.be")
        states = env["res.country.state"].search([], limit=50).ids
        companies = env["res.partner"].create([{"name": "Bench Company %d" % n, "is_company": True} for n in range(COMPANIES)])
        env.flush_all()
        cr.execute(
            """INSERT INTO res_partner (name, complete_name, active, type, is_company, parent_id, country_id, state_id,
                                        commercial_partner_id, create_date, write_date)
               SELECT 'Bench Contact ' || n, 'Bench Contact ' || n, true, 'contact', false,
                      (%s::int[])[1 + n %% %s], %s, (%s::int[])[1 + n %% %s], NULL, now(), now()
                 FROM generate_series(1, %s) AS n""",
            (companies.ids, COMPANIES, belgium.id, states, len(states), SIZES[-1]),
        )
        cr.commit()
        # Statistics for the million new rows now, not whenever autovacuum gets to them: without
        # them PostgreSQL plans each chunk's keyset query as if the table were empty.
        cr.execute("ANALYZE res_partner")


def measure(database: str, size: int, mode: str) -> dict:
    """Child-process mode: export the first ``size`` contacts one way, report the figures."""
    from odoo import SUPERUSER_ID, api

    registry = odoo_env(database)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        cr.execute("SELECT id FROM res_partner WHERE name LIKE 'Bench Contact %%' ORDER BY id OFFSET %s LIMIT 1", (size - 1,))
        domain = [("name", "=like", "Bench Contact %"), ("id", "<=", cr.fetchone()[0])]
        env["res.partner"].search([], limit=1)  # load what every request loads
        from odoo.addons.zero_sudo_export.tools.streaming import render

        params = {
            "import_compat": False,
            "context": {},
            "domain": domain,
            "groupby": [],
            "ids": False,
            "model": "res.partner",
            "fields": [{"name": name, "label": label, "type": kind} for name, label, kind in DIALOG_FIELDS],
        }
        queries, started = cr.sql_log_count, time.perf_counter()
        with PeakRss() as rss:
            if mode in ("xlsx", "csv"):
                exporter = env["zero_sudo.export"]
                with open(os.devnull, "wb") as sink:
                    for piece in exporter._dialog_pieces(exporter._dialog_parse(params), "zs_" + mode):
                        sink.write(piece)
            elif mode == "odoo_xlsx":
                odoo_xlsx(env, params)
            elif mode == "stream":
                with open(os.devnull, "wb") as sink:
                    for piece in render(env["zero_sudo.export"]._export_rows("res.partner", domain, FIELDS), "json"):
                        sink.write(piece)
            else:
                records = env["res.partner"].search(domain)
                len(records.export_data(ODOO_FIELDS)["datas"])
        elapsed = time.perf_counter() - started
        chunks = -(-size // 1000) + 1
        return {
            "rows_per_s": size / elapsed,
            "rss_growth_mb": rss.growth_mb,
            "queries_per_chunk": (cr.sql_log_count - queries) / chunks,
        }


def odoo_xlsx(env, params: dict) -> int:
    """Odoo's /web/export/xlsx for ``params``, minus HTTP: ExportFormat.base's search and
    export_data, then ExcelExport.from_data (which reads ``request.env``: a stand-in is pushed)."""
    from odoo.addons.web.controllers.export import ExcelExport
    from odoo.http import _request_stack

    class StandIn:
        pass

    stand_in = StandIn()
    stand_in.env = env
    _request_stack.push(stand_in)
    try:
        model = env[params["model"]].with_context(import_compat=False)
        records = model.search(params["domain"], offset=0, limit=False, order=False)
        rows = records.export_data([field["name"] for field in params["fields"]])["datas"]
        body = ExcelExport().from_data(params["fields"], [field["label"] for field in params["fields"]], rows)
        return len(body)
    finally:
        _request_stack.pop()


def run_child(database: str, size: int, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--database", database, "--measure", str(size), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--measure", nargs=2, metavar=("SIZE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.database, int(args.measure[0]), args.measure[1])))
        return
    fill(args.database)
    stream = {size: run_child(args.database, size, "stream") for size in (SIZES[0], SIZES[-1])}
    for size, figures in stream.items():
        print(
            "stream %8d rows: %7.0f rows/s, RSS growth %6.1f MB, %.1f queries per chunk"
            % (size, figures["rows_per_s"], figures["rss_growth_mb"], figures["queries_per_chunk"]),
            flush=True,
        )
    rounds = {"stream": [], "export_data": []}
    for round_no in range(1, ROUNDS + 1):  # alternated, so that both meet the same machine
        for mode, results in rounds.items():
            results.append(run_child(args.database, SIZES[1], mode))
            print(
                "round %d, %-11s %d rows: %7.0f rows/s, RSS growth %6.1f MB"
                % (round_no, mode, SIZES[1], results[-1]["rows_per_s"], results[-1]["rss_growth_mb"]),
                flush=True,
            )
    speed = {mode: statistics.median(r["rows_per_s"] for r in results) for mode, results in rounds.items()}
    export_data_rss = statistics.median(r["rss_growth_mb"] for r in rounds["export_data"])
    print(
        "medians at %d rows: stream %.0f rows/s, export_data %.0f rows/s, ratio %.2f"
        % (SIZES[1], speed["stream"], speed["export_data"], speed["stream"] / speed["export_data"])
    )
    dialog = dialog_path(args.database)
    print(
        "BENCH export rows_per_s=%.0f rss_growth_mb_10k=%.1f rss_growth_mb_1m=%.1f queries_per_chunk=%.1f odoo_export_data_rss_growth_mb_100k=%.1f %s"
        % (
            speed["stream"],
            stream[SIZES[0]]["rss_growth_mb"],
            stream[SIZES[-1]]["rss_growth_mb"],
            stream[SIZES[-1]]["queries_per_chunk"],
            export_data_rss,
            " ".join("%s=%s" % item for item in dialog.items()),
        )
    )


def dialog_path(database: str) -> dict:
    """The export dialog's streamed XLSX and CSV against Odoo's XLSX; the BENCH figures."""
    single = {("xlsx", SIZES[0]): None, ("xlsx", SIZES[-1]): None, ("csv", SIZES[-1]): None}
    for mode, size in single:
        single[mode, size] = figures = run_child(database, size, mode)
        print(
            "dialog %-4s %8d rows: %7.0f rows/s, RSS growth %6.1f MB"
            % (mode, size, figures["rows_per_s"], figures["rss_growth_mb"]),
            flush=True,
        )
    rounds = {"xlsx": [], "csv": [], "odoo_xlsx": []}
    for round_no in range(1, ROUNDS + 1):
        for mode, results in rounds.items():
            results.append(run_child(database, SIZES[1], mode))
            print(
                "round %d, dialog %-9s %d rows: %7.0f rows/s, RSS growth %6.1f MB"
                % (round_no, mode, SIZES[1], results[-1]["rows_per_s"], results[-1]["rss_growth_mb"]),
                flush=True,
            )
    speed = {mode: statistics.median(r["rows_per_s"] for r in results) for mode, results in rounds.items()}
    rss = {mode: statistics.median(r["rss_growth_mb"] for r in results) for mode, results in rounds.items()}
    print(
        "medians at %d rows: streamed xlsx %.0f rows/s, streamed csv %.0f rows/s, Odoo's xlsx %.0f rows/s (xlsx ratio %.2f)"
        % (SIZES[1], speed["xlsx"], speed["csv"], speed["odoo_xlsx"], speed["xlsx"] / speed["odoo_xlsx"])
    )
    return {
        "xlsx_rows_per_s": "%.0f" % speed["xlsx"],
        "xlsx_rss_growth_mb_10k": "%.1f" % single["xlsx", SIZES[0]]["rss_growth_mb"],
        "xlsx_rss_growth_mb_100k": "%.1f" % rss["xlsx"],
        "xlsx_rss_growth_mb_1m": "%.1f" % single["xlsx", SIZES[-1]]["rss_growth_mb"],
        "csv_rows_per_s": "%.0f" % speed["csv"],
        "csv_rss_growth_mb_1m": "%.1f" % single["csv", SIZES[-1]]["rss_growth_mb"],
        "odoo_xlsx_rows_per_s": "%.0f" % speed["odoo_xlsx"],
        "odoo_xlsx_rss_growth_mb_100k": "%.1f" % rss["odoo_xlsx"],
    }


if __name__ == "__main__":
    main()
