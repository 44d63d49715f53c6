"""Great Expectations Data Docs for one business day: static HTML beside the day's report.

The site is built by GX's own site builder from an in-memory context that holds exactly the day's
results, so it shows nothing from other days or other runs. It is replaced whole on a rerun. GX
stamps pages with build times and random ids; that is why Data Docs live in their own folder,
outside what the byte-identity of a rerun covers.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from html import escape
from pathlib import Path

from pipelines.quality import engines
from pipelines.quality.gate import QualityResult, TableResult

SITE_NAME = "payrecon"


def write_data_docs(results: Sequence[QualityResult], out_dir: Path) -> Path:
    """Write Data Docs for `results` under `out_dir/data_docs/` (replacing what a previous run left
    there) and return the path of its `index.html`, which opens in a browser without a server.
    Beside it, `payrecon.html` lists every validation, its failures and its page without scripts."""
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    site_dir = Path(out_dir) / "data_docs"
    if site_dir.exists():
        shutil.rmtree(site_dir)
    context = engines._context()
    for name in list(context.get_config().data_docs_sites or {}):
        context.delete_data_docs_site(name)
    context.add_data_docs_site(
        SITE_NAME,
        {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    suites_added: set[str] = set()
    pages: list[tuple[QualityResult, TableResult, ValidationResultIdentifier]] = []
    for quality in results:
        for table, result in zip(quality.tables, quality.gx_results(), strict=True):
            if result.suite_name not in suites_added:
                suite = ExpectationSuite(name=result.suite_name)
                for evr in result.results:
                    config = evr.expectation_config
                    if config is not None:
                        suite.add_expectation_configuration(config)
                context.suites.add(suite)
                suites_added.add(result.suite_name)
            suite_id = ExpectationSuiteIdentifier(name=result.suite_name)
            result_id = ValidationResultIdentifier(
                expectation_suite_identifier=suite_id,
                run_id=result.meta["run_id"],
                batch_identifier=engines.safe_name(table.asset),
            )
            context.validation_results_store.store_validation_results(
                suite_validation_result=result,
                suite_validation_result_identifier=result_id,
                expectation_suite_identifier=suite_id,
            )
            pages.append((quality, table, result_id))
    context.build_data_docs(site_names=[SITE_NAME])
    index = site_dir / "index.html"
    assert index.exists(), f"GX built no index at {index}"
    links = []
    for quality, table, result_id in pages:
        urls = context.get_docs_sites_urls(resource_identifier=result_id, site_name=SITE_NAME)
        url = str(urls[0]["site_url"]) if urls and urls[0].get("site_url") else ""
        page = Path(url.removeprefix("file://")) if url.startswith("file://") else None
        links.append((quality, table, page.relative_to(site_dir).as_posix() if page and page.exists() else ""))
    _write_plain_index(site_dir / "payrecon.html", links)
    return index


def _write_plain_index(path: Path, links: list[tuple[QualityResult, TableResult, str]]) -> None:
    """A plain page listing every validation with its verdict, failures and GX page. GX's own
    index fills its table with scripts from CDNs, so offline it is empty; this one is not."""
    rows = []
    for quality, table, href in sorted(links, key=lambda x: (x[0].source, x[1].suite)):
        failed = [o.message() for o in table.outcomes if not o.success]
        status = "passed" if not failed else f"failed ({len(failed)})"
        name = escape(f"{quality.source} [{table.suite}]")
        cell = f'<a href="{escape(href)}">{name}</a>' if href else name
        detail = "<br>".join(escape(m, quote=False) for m in failed)
        rows.append(f"<tr><td>{cell}</td><td>{status}</td><td>{detail}</td></tr>")
    path.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>payrecon data quality</title>'
        "<style>body{font-family:sans-serif;margin:24px}td,th{border:1px solid #ccc;padding:3px 8px;"
        "vertical-align:top;text-align:left}table{border-collapse:collapse}</style></head><body>"
        "<h1>Data quality</h1><p>Great Expectations results of the day; "
        '<a href="index.html">the full Data Docs</a>.</p><table><tr><th>source [suite]</th><th>verdict</th>'
        "<th>failed expectations</th></tr>" + "".join(rows) + "</table></body></html>\n",
        encoding="utf-8",
    )
