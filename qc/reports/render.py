"""The two documents laid out as PDF pages, with the plain words a reader outside the plant needs
next to each number (docs/reports.md explains them at length)."""

from __future__ import annotations

import logging

from qc.reports import charts
from qc.reports.pdf import (
    MAX_EPISODES,
    Document,
    money,
    pct,
    verification_section,
    when,
)

log = logging.getLogger(__name__)


def quality_report(document: dict, paper: str = "a4") -> bytes:
    """The period quality report as PDF (document: the signed JSON document)."""
    p = document["payload"]
    s, period = p["stats"], p["period"]
    scope = period["product"] or "all products"
    pdf = Document(paper, f"Quality report {period['first_day']} – {period['last_day']}",
                   document["signature"]["key_fingerprint"])
    pdf.title_block("Quality report", [
        f"Period: {period['first_day']} to {period['last_day']} (whole days, "
        f"{period['timezone']}) · {scope}",
        f"Issued {when(p['issued_at'])} UTC by {p['issued_by']} · every unit the inspection "
        "stations recorded, as decided by the AI model"])
    _key_figures(pdf, p)
    pdf.heading("Defect rate per day and its stability (p-chart)", room=90)
    pdf.para("Each point is one day's share of failed units. The dashed lines are the control "
             "limits: a stable process stays inside them 997 times in 1000. A point outside "
             "means something changed that day (a worn tool, a new material) and is worth a "
             "question.")
    if s["p_chart"]["points"]:
        pdf.picture(charts.p_chart(s["p_chart"]["points"]))
    _months(pdf, p["months"])
    _stability(pdf, p["stability"])
    _pareto(pdf, s["pareto"])
    _costs(pdf, p["cost_of_quality"], s["savings"])
    _performance(pdf, p["model_performance"])
    _integrity(pdf, p["integrity"], p["model_changes"])
    verification_section(pdf, document)
    return pdf.finish(document)


def _key_figures(pdf: Document, p: dict) -> None:
    t, stab, sav = p["stats"]["totals"], p["stability"], p["stats"]["savings"]
    pdf.heading("Key figures")
    pdf.table(("figure", "value", "what it means"), [
        ("Units inspected", f"{t['inspected']:,}", "every unit photographed and judged"),
        ("Failed", f"{t['defective']:,}", "units the model rejected as defective"),
        ("Defect rate", pct(t["defect_rate"]), "failed ÷ inspected"),
        ("First-pass yield", pct(t["first_pass_yield"]), "passed ÷ inspected, first time"),
        ("Days out of control", f"{stab['out_of_control']} of {stab['subgroups']}",
         "days whose defect rate left the control limits"),
        ("Savings vs manual inspection", money(sav["total"]),
         "cost of inspecting by eye minus cost with qc (plant currency)"),
    ], widths=(45, 30, 105))


def _months(pdf: Document, months: list[dict]) -> None:
    pdf.heading("Per month")
    pdf.table(("month", "inspected", "failed", "defect rate", "first-pass yield",
               "days out of control"),
              [(m["month"], f"{m['inspected']:,}", f"{m['defective']:,}",
                pct(m["defect_rate"]), pct(m["first_pass_yield"]),
                m["days_out_of_control"]) for m in months])


def _stability(pdf: Document, stab: dict) -> None:
    pdf.heading("Out-of-control episodes and what followed")
    if not stab["episodes"]:
        pdf.para("No day left the control limits: the process was stable over the period.")
        return
    pdf.para(f"{len(stab['episodes'])} episode(s) of consecutive days outside the limits "
             f"(centre p̄ = {pct(stab['center'])}). 'Then' is the next day's defect rate, "
             "back inside the limits.")
    rows = [(e["first"][:10], e["last"][:10], e["subgroups"], e["direction"],
             pct(e["worst_p"]),
             f"{e['then']['bucket'][:10]}: {pct(e['then']['p'])}" if e["then"]
             else "still outside at the end of the period")
            for e in stab["episodes"][:MAX_EPISODES]]
    pdf.table(("from", "to", "days", "side", "worst day", "then"), rows)
    if len(stab["episodes"]) > MAX_EPISODES:
        pdf.para(f"… and {len(stab['episodes']) - MAX_EPISODES} more in the attached data.")


def _pareto(pdf: Document, rows: list[dict]) -> None:
    pdf.heading("Defects by type (Pareto)", room=90 if rows else 20)
    if not rows:
        pdf.para("No failed units in the period.")
        return
    pdf.para("Which defects make up the failures, largest first; fixing the first one or two "
             "usually removes most of them.")
    pdf.picture(charts.pareto(rows))
    pdf.table(("defect type", "failed units", "share", "cumulative"),
              [(r["defect_type"], f"{r['count']:,}", pct(r["share"], 1),
                pct(r["cumulative_share"], 1)) for r in rows])


def _costs(pdf: Document, coq: dict, savings: dict) -> None:
    pdf.heading("Cost of quality and savings")
    pdf.para("With qc: the camera station's cost per unit (appraisal), defects caught in-house "
             "(internal failure), defects the model misses that reach customers (external "
             "failure) and good units rejected by mistake. Without qc: a person looks at every "
             "unit and misses some defects. The estimate rests on the assumptions below, "
             "which the plant sets per product (docs/economics.md).")
    pdf.table(("product", "units", "appraisal", "internal", "external", "false rejects",
               "with qc", "manual", "savings"),
              [(r["product"], f"{r['units']:,}", *(money(v) for v in r["with_qc"].values()),
                money(r["with_qc_total"]), money(r["manual_total"]), money(r["savings"]))
               for r in coq["products"]])
    for entry in savings["products"]:
        if entry.get("total") is None:
            pdf.para(f"{entry['product']}: no estimate ({entry['reason']}).")
            continue
        a = entry["assumptions"]
        pdf.para(
            f"{entry['product']} assumptions: manual look {money(a['manual_inspection_cost'])}"
            f" per unit, people miss {pct(a['manual_miss_rate'], 0)} of defects, an escaped "
            f"defect costs {money(a['escape_cost'])}, one caught in-house "
            f"{money(a['internal_failure_cost'])}, a false reject "
            f"{money(a['false_reject_cost'])}, qc {money(a['qc_cost_per_unit'])} per unit; "
            f"flagged {pct(a['flagged_fraction'])}, estimated true defect rate "
            f"{pct(a['true_defect_rate'])}, recall {pct(a['recall'], 1)}, false-reject rate "
            f"{pct(a['false_reject_rate'])} ({a['source']}, {a['reviews']} reviews).", size=8)


def _performance(pdf: Document, rows: list[dict]) -> None:
    pdf.heading("How well the model inspects")
    pdf.para("Recall: the share of defective units the model catches. False-reject rate: the "
             "share of good units it rejects. 'Validation' is measured on held-out photos when "
             "the model was trained; 'refined' adds the plant engineers' reviews of real "
             "results. The range is a 95 % interval: more reviews make it narrower.")
    table = []
    for r in rows:
        if "refined" not in r:
            table.append((r["product"], r.get("model_version") or "–", r.get("reason") or "",
                          "", "", ""))
            continue
        ref = r["refined"]
        lo, hi = ref["recall_interval"]
        flo, fhi = ref["false_reject_rate_interval"]
        table.append((r["product"], r["model_version"],
                      f"{pct(r['validation']['recall'], 1)} / "
                      f"{pct(r['validation']['false_reject_rate'])}",
                      f"{pct(ref['recall'], 1)} ({pct(lo, 1)}–{pct(hi, 1)})",
                      f"{pct(ref['false_reject_rate'])} ({pct(flo)}–{pct(fhi)})",
                      f"{r['reviews']['total']:,}"))
    pdf.table(("product", "model", "validation recall / false rejects", "refined recall",
               "refined false rejects", "reviews"), table)


def _integrity(pdf: Document, cov: dict, changes: dict) -> None:
    pdf.heading("Coverage and integrity of the records")
    t = cov["total"]
    pdf.para(f"Traceability: {pct(t['share_with_lot'], 1)} of units carry a lot number and "
             f"{pct(t['share_with_serial'], 1)} a serial number; photos are kept for "
             f"{pct(t['share_with_photo'], 1)} (older photos of good units are deleted by the "
             f"plant's retention policy; the results stay). {t['late']:,} results "
             f"({pct(t['share_late'])}) reached the server more than "
             f"{cov['late_after_s'] // 60} minutes after the inspection (a station was offline "
             "and sent them later); the longest delay was "
             f"{t['longest_delay_s'] / 3600:.1f} h.")
    pdf.table(("station", "inspected", "with lot", "with serial", "with photo", "sent late",
               "longest delay"),
              [(r["station"] or "(none)", f"{r['inspected']:,}", f"{r['with_lot']:,}",
                f"{r['with_serial']:,}", f"{r['with_photo']:,}", f"{r['late']:,}",
                f"{r['longest_delay_s'] / 3600:.1f} h") for r in cov["stations"]])
    pdf.heading("Changes of model")
    rows = [("before the period", c["product"], c["model_version"], c["action"], c["by"] or "",
             when(c["at"])) for c in changes["active_at_start"]]
    rows += [("during the period", c["product"], c["model_version"], c["action"],
              c["by"] or "", when(c["at"])) for c in changes["during"]]
    if rows:
        pdf.table(("when", "product", "model", "action", "by", "at (UTC)"), rows)
    else:
        pdf.para("No model was activated.")


def lot_certificate(document: dict, paper: str = "a4") -> bytes:
    """The lot certificate of conformance as PDF."""
    p = document["payload"]
    s = p["summary"]
    pdf = Document(paper, f"Certificate of conformance, lot {p['lot']}",
                   document["signature"]["key_fingerprint"])
    pdf.title_block("Certificate of conformance", [
        f"Lot: {p['lot']}" + (f" · product {p['product']}" if p["product"] else ""),
        f"Issued {when(p['issued_at'])} UTC by {p['issued_by']}"])
    verdict = ("Every unit of this lot conforms." if s["all_conform"] else
               f"{s['nonconforming']:,} of {s['units']:,} units do not conform.")
    pdf.para(f"{verdict} Each unit was photographed and judged by the AI model at an "
             "inspection station; where a plant engineer reviewed a unit, the engineer's "
             "label decides ('final').")
    pdf.table(("figure", "value"), [
        ("Units", f"{s['units']:,}"),
        ("Passed / failed by the model", f"{s['passed']:,} / {s['failed']:,}"),
        ("Reviewed by an engineer / overridden", f"{s['reviewed']:,} / {s['overridden']:,}"),
        ("Conforming / nonconforming (final)", f"{s['conforming']:,} / {s['nonconforming']:,}"),
        ("Nonconforming by label", ", ".join(f"{k}: {v}" for k, v in
                                             s["nonconforming_by_label"].items()) or "–"),
        ("Products", ", ".join(s["products"])),
        ("Stations", ", ".join(s["stations"]) or "–"),
        ("Model versions", ", ".join(s["model_versions"]) or "–"),
        ("Inspected", f"{when(s['first_inspected_at'])} – {when(s['last_inspected_at'])} UTC"),
    ], widths=(70, 110))
    pdf.heading("Units")
    pdf.grid(("#", "serial", "inspected (UTC)", "station", "verdict", "score", "model",
              "review", "final"),
              [(n, u["serial"] or "–", when(u["inspected_at"]), u["station"] or "–",
                u["verdict"], f"{u['score']:.3f}", u["model_version"] or "–",
                u["review"] or "", u["final_label"])
               for n, u in enumerate(p["units"], 1)],
             widths=(10, 32, 25, 18, 12, 11, 25, 14, 28))
    verification_section(pdf, document)
    return pdf.finish(document)
