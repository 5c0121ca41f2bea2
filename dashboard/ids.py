"""Component ids, in one place so layouts, callbacks and tests agree.

Each id is a page prefix plus a component name (``overview-table``). Run ids in URLs are the
integers `RunStore` hands out, never paths.
"""

# App shell (app.py)
URL = "url"
TICK = "tick"
VERSION = "store-version"
STATUS = "status"
PAGE = "page"
PAGE_OVERVIEW = "page-overview"
PAGE_RUN = "page-run"
PAGE_COMPARE = "page-compare"
PAGE_NOTFOUND = "page-notfound"
ROUTED_LOADED = "routed-loaded"
NAV_OVERVIEW = "nav-overview"
NAV_COMPARE = "nav-compare"
EXPORT_HTML = "export-html"
EXPORT_MD = "export-md"
DOWNLOAD = "download"

# Overview (views/overview.py)
OVERVIEW_COUNTS = "overview-counts"
OVERVIEW_VERDICT = "overview-verdict-filter"
OVERVIEW_CODE = "overview-code-filter"
OVERVIEW_TEXT = "overview-text-filter"
OVERVIEW_TABLE = "overview-table"
OVERVIEW_COMPARE_LINK = "overview-compare-link"
OVERVIEW_PROBLEMS = "overview-problems"
OVERVIEW_LOADING = "overview-loading"

# Run page (views/run.py)
RUN_ID = "run-id"
RUN_TITLE = "run-title"
RUN_GRAPH = "run-graph"
RUN_RANGE_BOX = "run-range-box"
RUN_RANGE_GRAPH = "run-range-graph"
RUN_SIDE = "run-side"

# Compare (views/compare.py)
COMPARE_PICK = "compare-pick"
COMPARE_X = "compare-x"
COMPARE_SIGNAL = "compare-signal"
COMPARE_GRAPH = "compare-graph"
COMPARE_TABLE = "compare-table"
COMPARE_LINK = "compare-link"
