// The page: loads the wasm module, trains LeNet++ on the browser's WebGPU and draws the
// test features every few steps. `?auto&steps=N&every=M&source=faces` trains both panels
// on load (what the smoke test and the screenshot use).
import init, { Plan, Trainer, defaultAlpha, defaultLambda } from "./pkg/centerloss_web.js";

const $ = (selector) => document.querySelector(selector);
const params = new URLSearchParams(location.search);
// The paper's Figure 2 colours, one per digit.
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function setStatus(text, state) {
  $("#status").textContent = text;
  if (state) document.body.dataset.state = state;
}

function fail(error) {
  const text = error && error.message ? error.message : String(error);
  console.error(text);
  setStatus(`Error: ${text}`, "error");
  for (const b of document.querySelectorAll("button")) b.disabled = false;
}
window.addEventListener("error", (e) => fail(e.error || e.message));
window.addEventListener("unhandledrejection", (e) => fail(e.reason));

// IDX bytes, gunzipped when they start with gzip's magic number.
async function idx(bytes) {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return bytes;
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

// The images and labels files: the repository's t10k files, or the two the user picked
// (the one whose third dimension byte says 3 dimensions holds the images).
async function mnistFiles() {
  if ($("#source").value === "mnist") {
    return Promise.all(["mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"].map(async (u) => idx(await fetchBytes(u))));
  }
  const files = [...$("#files").files];
  if (files.length !== 2) throw new Error("pick two IDX files: the images and their labels");
  const [a, b] = await Promise.all(files.map(async (f) => idx(new Uint8Array(await f.arrayBuffer()))));
  return a[3] === 3 ? [a, b] : [b, a];
}

async function makeTrainer(plan) {
  if ($("#source").value === "faces") return Trainer.faces(plan);
  const [images, labels] = await mnistFiles();
  return Trainer.mnist(images, labels, plan);
}

function draw(canvas, features, labels, centers) {
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
  for (let i = 0; i < features.length; i += 2) {
    x0 = Math.min(x0, features[i]); x1 = Math.max(x1, features[i]);
    y0 = Math.min(y0, features[i + 1]); y1 = Math.max(y1, features[i + 1]);
  }
  const span = Math.max(x1 - x0, y1 - y0, 1e-6) * 1.08;
  const [cx, cy] = [(x0 + x1) / 2, (y0 + y1) / 2];
  const px = (x) => width / 2 + ((x - cx) / span) * (width - 20);
  const py = (y) => height / 2 - ((y - cy) / span) * (height - 20);
  g.strokeStyle = "#ddd";
  g.beginPath(); g.moveTo(px(0), 0); g.lineTo(px(0), height); g.moveTo(0, py(0)); g.lineTo(width, py(0)); g.stroke();
  g.globalAlpha = 0.6;
  for (let i = 0; i < labels.length; i++) {
    g.fillStyle = COLOURS[labels[i] % COLOURS.length];
    g.fillRect(px(features[2 * i]) - 1.5, py(features[2 * i + 1]) - 1.5, 3, 3);
  }
  g.globalAlpha = 1;
  for (let c = 0; c < centers.length / 2; c++) {
    const [x, y] = [px(centers[2 * c]), py(centers[2 * c + 1])];
    g.fillStyle = COLOURS[c % COLOURS.length];
    g.strokeStyle = "#000"; g.lineWidth = 2;
    g.beginPath(); g.arc(x, y, 6, 0, 2 * Math.PI); g.fill(); g.stroke();
    g.fillStyle = "#000"; g.font = "bold 13px system-ui"; g.fillText(String(c), x + 8, y - 8);
  }
}

// Trains one panel; returns its images/s.
async function train(panelId, lambda) {
  const panel = $(panelId);
  const [canvas, stats] = [panel.querySelector("canvas"), panel.querySelector(".stats")];
  const steps = Math.max(1, Number($("#steps").value) | 0);
  const every = Math.max(1, Number($("#every").value) | 0);
  const plan = new Plan(lambda, Number($("#alpha").value), steps);
  plan.batch = Math.max(1, Number($("#batch").value) | 0);
  if (params.has("test")) plan.test_images = Math.max(1, Number(params.get("test")) | 0);
  setStatus(`λ = ${lambda}: loading the data and building LeNet++…`, "training");
  const trainer = await makeTrainer(plan);
  $("#adapter").textContent = `Adapter: ${trainer.adapter()}`;
  const labels = trainer.testLabels();
  const batch = trainer.batchSize();
  const begun = performance.now();
  // The first step compiles the pipelines: the rate counts the steps after it.
  let [done, trainingMs, firstStep] = [0, 0, null];
  while (done < steps) {
    const n = done === 0 ? 1 : Math.min(every, steps - done);
    const t = performance.now();
    const m = await trainer.train(n);
    if (done > 0) trainingMs += performance.now() - t;
    done += n;
    if (firstStep === null) {
      const now = performance.now();
      firstStep = `first step ${((now - begun) / 1000).toFixed(1)} s after the start (${(now / 1000).toFixed(1)} s after the page loaded)`;
    }
    const features = await trainer.features();
    const centers = await trainer.centers();
    draw(canvas, features, labels, centers);
    const rate = trainingMs > 0 ? ((done - 1) * batch) / (trainingMs / 1000) : NaN;
    stats.textContent = `step ${m[3]} of ${steps} · softmax loss ${m[0].toFixed(3)} · center loss ${m[2].toFixed(4)} · ` +
      `test accuracy ${(100 * trainer.testAccuracy()).toFixed(1)}% · ${rate.toFixed(1)} images/s · ${firstStep}`;
    setStatus(`λ = ${lambda}: step ${done} of ${steps}`, "training");
  }
  trainer.free();
  return trainingMs > 0 ? ((done - 1) * batch) / (trainingMs / 1000) : NaN;
}

async function run(panels) {
  for (const b of document.querySelectorAll("button")) b.disabled = true;
  const rates = [];
  for (const [panelId, lambda] of panels) rates.push(`λ = ${lambda}: ${(await train(panelId, lambda)).toFixed(1)} images/s`);
  setStatus(`Trained (${rates.join(", ")}).`, "trained");
  for (const b of document.querySelectorAll("button")) b.disabled = false;
}

async function main() {
  if (!navigator.gpu) {
    setStatus("This browser has no WebGPU, so nothing can train here. Use a browser with WebGPU " +
      "(Chrome or Edge 113+, Safari 26, Firefox 141+ on Windows; on Linux, Chromium with --enable-unsafe-webgpu).", "no-webgpu");
    return;
  }
  if (!(await navigator.gpu.requestAdapter())) {
    setStatus("WebGPU is present but offered no adapter (a blocklisted GPU or driver?): nothing can train here.", "no-webgpu");
    return;
  }
  await init({ module_or_path: new URL("./pkg/centerloss_web_bg.wasm", import.meta.url) });
  // f32 defaults, shown as the decimals they stand for.
  $("#lambda").value = params.get("lambda") ?? Number(defaultLambda().toPrecision(6));
  $("#alpha").value = params.get("alpha") ?? Number(defaultAlpha().toPrecision(6));
  for (const key of ["steps", "every", "batch", "source"]) if (params.has(key)) $(`#${key}`).value = params.get(key);
  const showLambda = () => { $("#panel-center .lambda").textContent = $("#lambda").value; };
  $("#lambda").addEventListener("input", showLambda);
  showLambda();
  $("#source").addEventListener("change", () => { $("#files-label").hidden = $("#source").value !== "files"; });
  const lambda = () => Number($("#lambda").value);
  $("#train-center").addEventListener("click", () => run([["#panel-center", lambda()]]).catch(fail));
  $("#train-softmax").addEventListener("click", () => run([["#panel-softmax", 0]]).catch(fail));
  setStatus("Ready: pick the data, λ and α, and train.", "ready");
  if (params.has("auto")) await run([["#panel-center", lambda()], ["#panel-softmax", 0]]);
}

main().catch(fail);
