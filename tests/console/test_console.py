"""The web console in a real browser against a real server: collections, upload,
browsing, the search playground and its explanations, comparison, snapshots, models,
the server page, bad input in every form, and an API key. Each page's screenshot is
saved under docs/console/ as it is reached."""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By

TOPICS = [
    ("heat", "heat transfer in the laminar boundary layer of a heated flat plate"),
    ("flow", "supersonic flow over a swept wing at small angles of attack"),
    ("structures", "buckling of thin cylindrical shells under axial compression"),
    ("heat", "convective heat transfer near the stagnation point of a blunt body"),
    ("flow", "shock wave boundary layer interaction on a compression ramp"),
]


def corpus(n: int) -> list[dict]:
    docs = []
    for i in range(n):
        topic, text = TOPICS[i % len(TOPICS)]
        docs.append({
            "id": f"doc-{i:02d}",
            "text": f"{text} (report {i})",
            "metadata": {"year": 1950 + i % 20, "topic": topic, "tags": [topic, f"t{i % 4}"],
                         "source": {"journal": "J. Aero. Sci.", "volume": 10 + i // 10}},
        })
    return docs


@pytest.fixture(scope="module")
def cranes(server, api):
    """A collection made through the API, for the pages that read one."""
    status, _ = api(server, "PUT", "/collections/cranes",
                     {"embedding_model": "test/bert", "reranker_model": "test/qwen3-rerank"})
    assert status == 201
    status, _ = api(server, "POST", "/collections/cranes/documents", {"documents": corpus(30)})
    assert status == 200
    return "cranes"


def count(api, server, name: str) -> int:
    status, body = api(server, "GET", f"/collections/{name}")
    assert status == 200, body
    return body["count"]


def test_collections_upload_browse_view_delete(console, api, server, cranes, tmp_path):
    c = console
    c.open("/collections")
    c.text_in("#collections-table", "cranes")
    # Create through the form: an embedding model and a reranker.
    c.fill("#create-collection input[name=name]", "papers")
    c.fill("#create-collection input[name=embedding_model]", "test/bert")
    c.fill("#create-collection input[name=reranker_model]", "test/qwen3-rerank")
    c.click("#create-collection button[type=submit]")
    c.text_in("#create-notice", "Created papers")
    row = c.text_in("#collections-table tr[data-name=papers]", "test/bert")
    assert "32" in row.text and "test/qwen3-rerank" in row.text
    c.shot("collections")

    # Upload a JSONL file of 60 documents, then a BEIR corpus file of 2.
    jsonl = tmp_path / "papers.jsonl"
    jsonl.write_text("\n".join(json.dumps(d) for d in corpus(60)) + "\n")
    beir = tmp_path / "corpus.jsonl"
    beir.write_text(json.dumps({"_id": "beir-1", "title": "Wing flutter", "text": "flutter of a swept wing"})
                    + "\n\n" + json.dumps({"_id": 2, "title": "", "text": "heat flux gauges"}) + "\n")
    c.click("#collections-table tr[data-name=papers] a")
    c.visible("#upload-form")
    c.visible("#upload-file").send_keys(str(jsonl))
    c.click("#upload-submit")
    c.text_in("#upload-notice", "Uploaded 60 documents")
    assert c.find("#upload-progress").get_attribute("value") == "60"
    c.text_in("#fact-count", "60")
    c.visible("#upload-file").send_keys(str(beir))
    c.click("#upload-submit")
    c.text_in("#upload-notice", "Uploaded 2 documents")
    assert count(api, server, "papers") == 62
    _, doc = api(server, "GET", "/collections/papers/documents/beir-1")
    assert doc["text"] == "Wing flutter\nflutter of a swept wing" and doc["metadata"] == {"title": "Wing flutter"}

    # Browse: two pages of 50 in id order.
    c.wait(lambda: len(c.all("#documents-table tbody tr[data-id]")) == 50, "a full first page")
    first = c.attrs("#documents-table tbody tr[data-id]", "data-id")
    assert first == sorted(first) and first[0] == "2"
    c.shot("documents")
    c.click("#page-next")
    c.text_in("#page-where", "page 2")
    second = c.attrs("#documents-table tbody tr[data-id]", "data-id")
    assert len(second) == 12 and second[0] > first[-1]
    assert c.find("#page-next").get_attribute("disabled") is not None
    c.click("#page-prev")
    c.text_in("#page-where", "page 1")

    # One document: text, metadata tree, vector.
    c.click("#documents-table tr[data-id=doc-04] a")
    c.text_in("#document-text", "shock wave boundary layer interaction")
    c.text_in("#document-metadata", "topic")
    # The tree folds: "source" closed hides its fields, open shows them again.
    c.text_in("#document-metadata", '"J. Aero. Sci."')
    c.visible("#document-metadata details summary").click()
    c.wait(lambda: "J. Aero. Sci." not in c.find("#document-metadata").text, "source to fold")
    c.visible("#document-metadata details summary").click()
    c.text_in("#document-metadata", '"J. Aero. Sci."')
    c.text_in("#document-vector", "32")
    norm = float(c.find("#document-vector div:nth-child(2) dd").text)
    assert abs(norm - 1.0) < 1e-3
    c.shot("document")

    # Delete it from its page, then the collection from the list.
    c.click("#delete-document")
    c.click(".confirm-yes")
    c.text_in("#page-where", "page 1")
    assert count(api, server, "papers") == 61
    assert not c.all("#documents-table tr[data-id=doc-04]")
    c.open("/collections")
    c.visible("#collections-table tr[data-name=papers] button.danger").click()
    c.text_in("#collections-table .confirm", "Delete papers and its 61 documents?")
    c.click("#collections-table .confirm-yes")
    c.wait(lambda: not c.all("#collections-table tr[data-name=papers]"), "papers to leave the list")
    assert api(server, "GET", "/collections/papers")[0] == 404


def run_search(c) -> None:
    # The old results go first, so the wait below sees the new ones, not a stale list.
    c.d.execute_script("document.getElementById('search-results').replaceChildren()")
    c.click("#search-submit")
    c.wait(lambda: c.d.execute_script(
        "return document.querySelector('#search-results .results')"
        " || !document.getElementById('search-error').hidden"), "search results")
    err = c.find("#search-error")
    assert not err.is_displayed(), err.text


def test_search_modes_explain_compare(console, cranes):
    c = console
    c.open(f"/collections/{cranes}/search")
    c.fill("#q-text", "heat transfer boundary layer")
    for mode in ("dense", "sparse", "hybrid"):
        c.set_value("#mode-a", mode)
        run_search(c)
        hits = c.all("#results-a .hit")
        assert len(hits) == 10, mode
        title = c.find("#results-a h2").text
        assert mode in title
        chips = hits[0].find_element(By.CSS_SELECTOR, ".stages").text
        if mode != "sparse":
            assert "dense #" in chips
        if mode != "dense":
            assert "sparse" in chips
    # Every hit of a hybrid query came from at least one list and has a fused score.
    assert all("fused" in h.text for h in c.all("#results-a .hit .stages"))
    # The query's words are highlighted in the texts.
    marks = {m.text.lower() for m in c.all("#results-a .hit-text mark")}
    assert {"heat", "transfer", "boundary", "layer"} & marks

    # Weighted fusion, reranked, a filter: the explanation shows every stage.
    c.set_value("#fusion-a", "weighted")
    c.fill("#alpha-a", "0.7")
    c.check("#rerank-a")
    c.fill("#candidates-a", "20")
    c.set_value("#q-filter", '{"must": [{"key": "topic", "any": ["heat", "flow"]}]}')
    run_search(c)
    hits = c.all("#results-a .hit")
    assert 0 < len(hits) <= 10
    assert "rerank 20" in c.find("#results-a h2").text
    first = hits[0]
    first.find_element(By.CSS_SELECTOR, "details.explain summary").click()
    table = c.text_in("#results-a .hit:first-child .explain-table", "Rerank")
    for stage in ("Dense", "Sparse", "Fused", "Final"):
        assert stage in table.text
    assert "weighted: 0.7 × dense" in table.text
    assert "structures" not in c.find("#results-a").text  # the filter held
    legend = c.find("#results-a .timing-legend").text
    for stage in ("embed", "dense", "sparse", "fusion", "rerank", "total"):
        assert stage in legend
    assert len(c.all("#results-a .timing-bar .seg")) >= 5
    c.shot("search", "#search-form")

    # Side by side: A hybrid (RRF), B dense; B's ranks are marked against A's.
    c.set_value("#q-filter", "")
    c.set_value("#fusion-a", "rrf")
    c.check("#rerank-a", False)
    c.check("#compare")
    c.set_value("#mode-b", "dense")
    run_search(c)
    a = c.attrs("#results-a .hit", "data-id")
    b_hits = c.all("#results-b .hit")
    assert len(b_hits) == 10 and "dense" in c.find("#results-b h2").text
    for rank, hit in enumerate(b_hits, 1):
        mark = hit.find_element(By.CSS_SELECTOR, ".move").text
        hid = hit.get_attribute("data-id")
        if hid not in a:
            assert mark == "new"
        else:
            was = a.index(hid) + 1
            assert mark == ("=" if was == rank else f"↑{was - rank}" if was > rank else f"↓{rank - was}")
    c.shot("compare", "#search-results")


def test_snapshots_create_download_restore(console, api, server, cranes, http_errors):
    c = console
    c.open(f"/collections/{cranes}/snapshots")
    c.text_in("#snapshots-table", "No snapshots yet")
    c.fill("#snapshot-name", "before-upgrade")
    c.click("#snapshot-create-submit")
    c.text_in("#snapshot-create-notice", "Created before-upgrade")
    row = c.text_in("#snapshots-table tr[data-name=before-upgrade]", "before-upgrade")

    # Download: fetched with the key (none here) and saved from a blob.
    size = next(s["size"] for s in api(server, "GET", f"/collections/{cranes}/snapshots")[1]["snapshots"])
    row.find_element(By.XPATH, ".//button[text()='Download']").click()
    target = c.d.downloads / "before-upgrade.snapshot"
    c.wait(lambda: target.exists() and target.stat().st_size == size, "the downloaded snapshot")

    # Restoring over an existing collection needs the box ticked.
    c.fill("#restore-target", cranes)
    c.click("#restore-submit")
    c.text_in("#restore-error", "exists: restoring would replace it")
    # A new name: the restored collection holds the snapshot's documents.
    c.fill("#restore-target", "cranes-copy")
    c.click("#restore-submit")
    c.text_in("#restore-notice", "Restored cranes-copy (30 documents")
    assert count(api, server, "cranes-copy") == 30
    c.shot("snapshots")
    # A snapshot name the server refuses: its message, next to the create form.
    http_errors.allow(400)
    c.fill("#snapshot-name", "restore")
    c.click("#snapshot-create-submit")
    c.text_in("#snapshot-create-error", "reserved for the restore route")
    c.click("#restore-notice a")
    c.text_in("#collection-facts", "30")
    c.text_in("#page-where", "page 1")
    assert api(server, "DELETE", "/collections/cranes-copy")[0] == 200


def test_long_documents_show_their_chunks(console, api, server):
    """A text embedded in chunks: the document page lists them, a search hit shows the
    chunk that matched with the whole text folded below it."""
    long = ("Glaciers move slowly down the valley and carve deep lakes. Meltwater feeds the "
            "rivers below in summer. Ice cores drilled from the glacier record old climates. "
            "Crevasses open where the ice bends over steps in the rock bed.")
    status, _ = api(server, "PUT", "/collections/glaciers",
                    {"embedding_model": "test/bert", "chunking": {"max_tokens": 12}})
    assert status == 201
    status, _ = api(server, "POST", "/collections/glaciers/documents",
                    {"documents": [{"id": "ice", "text": long}, {"id": "sea", "text": "waves"}]})
    assert status == 200
    c = console
    c.open("/collections/glaciers/documents/ice")
    summary = c.text_in("#document-chunks summary", "Embedded in")
    summary.click()
    chunks = c.all("#document-chunks li")
    assert len(chunks) >= 3
    assert "characters 0–" in chunks[0].text
    c.open("/collections/glaciers/search")
    c.fill("#q-text", "ice cores record old climates")
    c.set_value("#mode-a", "sparse")
    run_search(c)
    first = c.all("#results-a .hit")[0]
    assert "chunk " in first.find_element(By.CSS_SELECTOR, ".passage").text
    marks = {m.text.lower() for m in first.find_elements(By.CSS_SELECTOR, ".hit-text > .hl mark")}
    assert {"cores", "climates"} <= marks, marks
    assert first.find_element(By.CSS_SELECTOR, "details.whole-text")


def test_models_page(console):
    c = console
    c.open("/models")
    row = c.text_in("#models-table tr[data-name='test/bert']", "embedding")
    assert "32" in row.text
    c.text_in("#models-table tr[data-name='test/qwen3-rerank']", "reranking")
    c.fill("#embed-model", "test/bert")
    c.click("#embed-form button[type=submit]")
    c.text_in("#embed-dim", "32")
    c.fill("#rerank-model", "test/qwen3-rerank")
    c.click("#rerank-form button[type=submit]")
    c.wait(lambda: len(c.all("#rerank-table tbody tr")) == 3, "three rerank scores")
    c.shot("models")


def test_server_page(console, cranes):
    c = console
    c.open("/server")
    c.text_in("#health", "ok")
    c.text_in("#readiness", "ready")
    c.text_in("#routes-table", "POST /collections/{name}/documents")
    c.text_in("#metrics-collections", "cranes")
    c.text_in("#metrics-models", "test/bert")
    c.shot("server")


def test_bad_input_shows_the_servers_message(console, api, server, cranes, http_errors, tmp_path):
    c = console
    http_errors.allow(400, 404, 422)

    # An unknown collection in the address.
    c.open("/collections/nope")
    c.text_in("#page-error", 'collection "nope"')
    c.open("/collections/nope/search")
    c.text_in("#page-error", 'collection "nope"')
    assert not c.all("#search-form")

    # Malformed filter JSON: flagged while typing, and nothing is sent.
    c.open(f"/collections/{cranes}/search")
    c.fill("#q-text", "heat")
    c.fill("#q-filter", '{"must": [')
    c.text_in("#filter-error", "Filter is not valid JSON")
    c.click("#search-submit")
    assert not c.all("#search-results .results")
    assert c.find("#search-error").is_displayed() is False
    # A well-formed filter the server refuses: its message, next to the form.
    c.set_value("#q-filter", '{"must": [{"key": "year", "between": [1, 2]}]}')
    c.wait(lambda: not c.find("#filter-error").is_displayed(), "the JSON error to clear")
    c.click("#search-submit")
    c.text_in("#search-error", 'unknown field "between"')
    # A vector of the wrong length.
    c.set_value("#q-filter", "")
    c.fill("#q-text", "")
    c.set_value("#q-vector", "[0.1, 0.2, 0.3]")
    c.set_value("#mode-a", "dense")
    c.click("#search-submit")
    c.text_in("#search-error", "vector has 3 components, the collection expects 32")
    assert not c.all("#search-results .results")

    # An upload whose line 3 has a vector of the wrong length uploads nothing at all.
    bad = tmp_path / "bad.jsonl"
    lines = [{"id": "ok-1", "text": "fine"}, {"id": "ok-2", "text": "fine too"},
             {"id": "bad", "text": "short vector", "vector": [0.5, 0.5]}, {"id": "ok-3", "text": "late"}]
    bad.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    c.open(f"/collections/{cranes}/documents")
    c.visible("#upload-file").send_keys(str(bad))
    c.click("#upload-submit")
    err = c.text_in("#upload-error", 'document "bad": vector has 2 components, the collection expects 32')
    assert "line 3" in err.text and "Nothing was uploaded" in err.text
    assert count(api, server, cranes) == 30
    assert api(server, "GET", f"/collections/{cranes}/documents/ok-1")[0] == 404
    # A line that is not JSON: caught before anything is sent.
    # (A new file: the browser refuses to read one changed since it was picked.)
    bad2 = tmp_path / "bad2.jsonl"
    bad2.write_text('{"id": "x", "text": "y"}\n{"id": \n')
    c.visible("#upload-file").send_keys(str(bad2))
    c.click("#upload-submit")
    c.text_in("#upload-error", "line 2: ")
    assert count(api, server, cranes) == 30

    # Creating: a name the server refuses, and a model it does not have.
    c.open("/collections")
    c.fill("#create-collection input[name=name]", "bad name!")
    c.fill("#create-collection input[name=embedding_model]", "test/bert")
    c.click("#create-collection button[type=submit]")
    msg = c.visible("#create-error").text
    status, body = api(server, "PUT", "/collections/bad%20name!", {"embedding_model": "test/bert"})
    assert status == 400 and body["error"]["message"] in msg
    c.fill("#create-collection input[name=name]", "nomodel")
    c.fill("#create-collection input[name=embedding_model]", "test/absent")
    c.click("#create-collection button[type=submit]")
    c.wait(lambda: "test/absent" in c.find("#create-error").text, "the unknown model's message")
    assert api(server, "GET", "/collections/nomodel")[0] == 404

    # Models: a dimension the model cannot give.
    c.open("/models")
    c.fill("#embed-model", "test/bert")
    c.fill("#embed-dims", "4096")
    c.click("#embed-form button[type=submit]")
    c.visible("#embed-error")
    assert not c.all("#embed-dim")


def test_api_key(keyed, api, driver, http_errors):
    c, server, key = keyed
    http_errors.allow(401)
    c.open("/collections")
    # A key of an earlier run in this tab would skip the prompt; start without one.
    driver.execute_script("sessionStorage.clear()")
    c.open("/collections")
    c.text_in("#key-error", "missing API key")
    c.fill("#key-input", "not-the-key")
    c.click("#key-submit")
    c.text_in("#key-error", "unknown API key")
    c.fill("#key-input", key)
    c.click("#key-submit")
    c.text_in("#collections-table", "No collections yet")
    # Writes carry the key too.
    c.fill("#create-collection input[name=name]", "keyed")
    c.fill("#create-collection input[name=embedding_model]", "test/bert")
    c.click("#create-collection button[type=submit]")
    c.text_in("#create-notice", "Created keyed")
    assert api(server, "GET", "/collections/keyed", key=key)[0] == 200
    c.click("#nav a[data-nav=server]")
    c.text_in("#routes-table", "PUT /collections/{name}")
    # The key is in session storage only: never in the page, nor left in the field.
    html = driver.find_element(By.TAG_NAME, "html").get_attribute("outerHTML")
    assert key not in html and key not in c.page_text()
    assert driver.execute_script("return document.getElementById('key-input').value") == ""
    assert driver.execute_script("return sessionStorage.getItem('quiver.apiKey')") == key
    assert driver.execute_script("return localStorage.length") == 0
    # Forgetting it asks again; declining leaves the server's message on the page.
    c.click("#forget-key")
    c.text_in("#key-error", "missing API key")
    c.click("#key-cancel")
    c.text_in("#metrics-error", "missing API key")
