// The page's only logic: call the API, draw one bar per class (most probable first), keep
// recent analyses.
const $ = (id) => document.getElementById(id);
const recent = [];
let maxLength = null; // tokens the model reads of a text, from /model

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  // the server takes only printable ASCII keys; fetch would refuse some other characters
  // with its own cryptic error, and send the rest to a certain 401
  if (!/^[\x20-\x7e]*$/.test(key)) {
    throw new Error("API key: it has a character other than printable ASCII, so it cannot " +
      "be the server's key (those are printable ASCII only); check what was pasted");
  }
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function call(path, options = {}) {
  const sent = headers(); // a bad key is said as such, not as the server gone
  let response;
  try {
    response = await fetch(path, { ...options, headers: sent });
  } catch (e) { // the browser says only "Failed to fetch"
    throw new Error(`cannot reach the server at ${location.host}: is it still running? (${e.message})`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) $("key-box").open = true;
    throw new Error(body.error || `request failed (${response.status})`);
  }
  return body;
}

async function loadModel() {
  try {
    const m = await call("/model");
    maxLength = m.max_length || null;
    const acc = m.test && m.test.accuracy;
    // a bound rounds outwards (lower down, upper up): the interval shown is never narrower
    const percent = (x, round) => (round(x * 1000 + (round === Math.floor ? 1e-6 : -1e-6)) / 10).toFixed(1);
    const parts = [`Model: ${m.name} (${m.backbone}, ${m.method})`];
    if (acc) {
      parts.push(`test accuracy ${(acc.value * 100).toFixed(1)}% ` +
        `(95% CI ${percent(acc.ci95[0], Math.floor)}–${percent(acc.ci95[1], Math.ceil)}%, n=${m.test.n})`);
    }
    // the test figures were measured at fp32: say so when the model is served otherwise
    if (m.precision && m.precision !== "fp32") {
      parts.push(`served in ${m.precision}` + (acc ? "; the test figures are the fp32 model's" : ""));
    }
    $("model-info").textContent = parts.join(" · "); // a run without a test has no figures
  } catch (e) {
    $("model-info").textContent = "Model details unavailable: " + e.message;
  }
}

function showResult(text, result) {
  $("label").textContent = result.label;
  $("confidence").textContent = `(${(result.confidence * 100).toFixed(1)}%)`;
  const bars = $("bars");
  bars.replaceChildren();
  // most probable first: with many labels (Banking77 has 77) the answer is on top; the
  // sort is stable, so equal probabilities keep the label order
  const ranked = Object.entries(result.scores).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of ranked) {
    const li = document.createElement("li");
    li.className = label === result.label ? "best" : "";
    li.dataset.label = label;
    const pct = (p * 100).toFixed(1);
    li.innerHTML = `<span class="name"></span>
      <div class="track" role="progressbar" aria-valuemin="0" aria-valuemax="100"
           aria-valuenow="${pct}"><div class="fill"></div></div>
      <span class="value">${pct}%</span>`;
    li.querySelector(".name").textContent = label;
    li.querySelector(".fill").style.width = `${pct}%`; // not a style attribute: the CSP forbids those
    li.querySelector(".track").setAttribute("aria-label", `${label} probability`);
    bars.appendChild(li);
  }
  const tokens = maxLength ? ` (${maxLength} tokens)` : "";
  $("truncated").textContent =
    `The text is longer than the model reads${tokens}: only its beginning was classified.`;
  $("truncated").hidden = !result.truncated;
  $("result").hidden = false;
  recent.unshift({ text, label: result.label, confidence: result.confidence });
  recent.length = Math.min(recent.length, 8);
  const list = $("recent");
  list.replaceChildren(...recent.map((r) => {
    const li = document.createElement("li");
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = `${r.label} ${(r.confidence * 100).toFixed(0)}%`;
    li.append(tag, " — ", r.text.length > 90 ? r.text.slice(0, 90) + "…" : r.text);
    return li;
  }));
}

async function analyze(event) {
  event.preventDefault();
  // Ctrl+Enter submits even with the button disabled: one analysis at a time, or the
  // answers could arrive out of order and show an older text's result
  if ($("analyze").disabled) return;
  const text = $("text").value;
  $("error").hidden = true;
  $("analyze").disabled = true;
  try {
    showResult(text, await call("/analyze", { method: "POST", body: JSON.stringify({ text }) }));
  } catch (e) {
    $("result").hidden = true; // it is the previous text's, not this one's
    $("error").textContent = e.message;
    $("error").hidden = false;
  } finally {
    $("analyze").disabled = false;
  }
}

$("analyze-form").addEventListener("submit", analyze);
$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("analyze-form").requestSubmit();
});
$("api-key").addEventListener("change", loadModel);
loadModel();
