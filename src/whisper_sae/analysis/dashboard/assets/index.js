// The feature index: rows come from the FEATURES literal in index.html (no fetch, so file:// works).
// Cells are filled with textContent, never innerHTML, so no data string can become markup.
// ATTRIBUTES lists the speaker attributes of the probe.json files (may be empty); each has a "sel:NAME" column
// (selectivity score), "cls:NAME" (the class it separates; "low:NAME" when it is lower there, shown as ↓)
// and "q:NAME" (BH-corrected p) in every row. Phones are ARPAbet ("phone_ipa": the eSpeak IPA it was mapped
// from, shown as a tooltip); a feature without a page has a "reason", shown in the page column.
(function () {
  "use strict";
  const LIMIT = 1000;
  const table = document.getElementById("features");
  const body = table.querySelector("tbody");
  const search = document.getElementById("search");
  const count = document.getElementById("count");
  const attrSelect = document.getElementById("attr");
  const classSelect = document.getElementById("attr-class");
  const minSel = document.getElementById("min-sel");
  const significant = document.getElementById("significant");
  const attributes = ATTRIBUTES, significantQ = SIGNIFICANT_Q;  // both written by index.html
  const columns = Array.from(table.querySelectorAll("th")).map((th) => th.dataset.key);
  const state = { key: "phone_f1", desc: true, query: "", attr: "", cls: "", min: 0, significant: true };
  if (!FEATURES.length || !("phone_f1" in FEATURES[0])) state.key = "word_f1" in (FEATURES[0] || {}) ? "word_f1" : "freq";

  function format(key, value, row) {
    if (value === null || value === undefined) return "—";
    if (key === "freq") return (100 * value).toFixed(3) + "%";
    if (key.startsWith("sel:")) {
      const cls = row["cls:" + key.slice(4)], low = row["low:" + key.slice(4)];
      return value.toFixed(3) + (cls === undefined || cls === null ? "" : " " + (low ? "↓" : "") + cls);
    }
    if (typeof value === "number" && key !== "feature") return value.toPrecision(3);
    return String(value);
  }

  function compare(a, b) {
    const x = a[state.key], y = b[state.key];
    const missing = (v) => v === null || v === undefined;
    if (missing(x) || missing(y)) return missing(x) - missing(y);  // missing values always last
    const order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return (state.desc ? -order : order) || a.feature - b.feature;
  }

  function selective(row) {
    if (!state.attr) return true;
    const score = row["sel:" + state.attr], q = row["q:" + state.attr];
    if (score === null || score === undefined || score < state.min) return false;
    if (state.significant && !(q !== null && q !== undefined && q < significantQ)) return false;
    return !state.cls || row["cls:" + state.attr] === state.cls;
  }

  function matches(row) {
    if (!selective(row)) return false;
    if (!state.query) return true;
    const q = state.query;
    return String(row.feature) === q ||
      [row.phone, row.phone_ipa, row.word].some((l) => l && String(l).toLowerCase().includes(q));
  }

  function render() {
    const rows = FEATURES.filter(matches).sort(compare);
    body.replaceChildren();
    for (const row of rows.slice(0, LIMIT)) {
      const tr = document.createElement("tr");
      tr.dataset.feature = row.feature;
      if (!row.page) tr.className = "nopage";
      for (const key of columns) {
        const td = document.createElement("td");
        td.dataset.key = key;
        if ((key === "feature" || key === "page") && row.page) {
          const a = document.createElement("a");
          a.href = "features/f" + row.feature + ".html";
          a.textContent = key === "page" ? "open" : row.feature;
          td.appendChild(a);
        } else if (key === "page") {
          td.textContent = row.reason || "none";
          td.title = "no page: " + (row.reason || "not selected");
        } else {
          td.textContent = format(key, row[key], row);
          if (key === "phone" && row.phone_ipa) td.title = "eSpeak IPA /" + row.phone_ipa + "/";
        }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    count.textContent = rows.length > LIMIT ? `showing ${LIMIT} of ${rows.length}` : `${rows.length} features`;
    for (const th of table.querySelectorAll("th")) {
      th.classList.toggle("sorted", th.dataset.key === state.key);
      th.classList.toggle("desc", th.dataset.key === state.key && state.desc);
    }
  }

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    select.appendChild(o);
  }

  table.querySelector("thead").addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th) return;
    state.desc = th.dataset.key === state.key ? !state.desc : th.dataset.key !== "feature";
    state.key = th.dataset.key;
    render();
  });
  search.addEventListener("input", () => { state.query = search.value.trim().toLowerCase(); render(); });
  if (attrSelect) {
    for (const a of attributes) option(attrSelect, a.name, a.name);
    attrSelect.addEventListener("change", () => {
      state.attr = attrSelect.value;
      state.cls = "";
      classSelect.replaceChildren();
      option(classSelect, "", "any class");
      const spec = attributes.find((a) => a.name === state.attr);
      for (const c of spec ? spec.classes : []) option(classSelect, c, c);
      if (state.attr) { state.key = "sel:" + state.attr; state.desc = true; }  // most selective first
      render();
    });
    classSelect.addEventListener("change", () => { state.cls = classSelect.value; render(); });
    minSel.addEventListener("input", () => { state.min = parseFloat(minSel.value) || 0; render(); });
    significant.addEventListener("change", () => { state.significant = significant.checked; render(); });
  }
  render();
})();
