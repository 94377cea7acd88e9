// Measures `dcos ui` in headless chromium over the DevTools protocol: the page at URL (argv[2])
// is loaded; prints first contentful paint, the time the first fleet answer was on screen
// (data-first-fleet-ms, set by app.js), how many host rows it had, then the browser's CPU
// (all its processes, from /proc) while the page refreshes for SECONDS (argv[3]).
// Run by scripts/bench-ui.sh; needs node >= 20 (--experimental-websocket) and chromium.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, seconds] = [process.argv[2], Number(process.argv[3] || 20)];
const profile = mkdtempSync(join(tmpdir(), "dcos-ui-bench-"));
const browser = spawn("chromium", ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
  `--user-data-dir=${profile}`, "--remote-debugging-port=0", "--window-size=1400,1000", "about:blank"], { stdio: "ignore" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const portFile = join(profile, "DevToolsActivePort");
while (!existsSync(portFile)) await sleep(50);
const port = readFileSync(portFile, "utf8").split("\n")[0];
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const ws = new WebSocket(targets.find((t) => t.type === "page").webSocketDebuggerUrl);
await new Promise((r) => ws.addEventListener("open", r));
let id = 0;
const waiting = new Map();
ws.addEventListener("message", (m) => {
  const msg = JSON.parse(m.data);
  if (waiting.has(msg.id)) { waiting.get(msg.id)(msg.result); waiting.delete(msg.id); }
});
const send = (method, params = {}) => new Promise((r) => { waiting.set(++id, r); ws.send(JSON.stringify({ id, method, params })); });
const evaluate = async (expr) => (await send("Runtime.evaluate", { expression: expr, returnByValue: true })).result.value;

await send("Page.enable");
await send("Page.navigate", { url });
let first = null;
for (let i = 0; i < 200 && !first; i++) {
  await sleep(50);
  first = await evaluate("document.body && document.body.dataset.firstFleetMs");
}
const fcp = await evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime");
const rows = await evaluate("document.querySelectorAll('#hosts tbody tr').length");

// The browser's CPU: every process whose command line names this profile.
const ticks = () => readdirSync("/proc").filter((p) => /^\d+$/.test(p)).reduce((sum, p) => {
  try {
    if (!readFileSync(`/proc/${p}/cmdline`, "utf8").includes(profile)) return sum;
    const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" ");
    return sum + Number(f[11]) + Number(f[12]);
  } catch { return sum; }
}, 0);
const t0 = ticks();
const started = Date.now();
await sleep(seconds * 1000);
const cpu = ((ticks() - t0) / 100) / ((Date.now() - started) / 1000) * 100;
const summary = await evaluate("document.getElementById('summary').textContent");
console.log(JSON.stringify({ first_contentful_paint_ms: Math.round(fcp), first_fleet_on_screen_ms: Number(first), host_rows: rows,
  browser_cpu_percent_of_one_core: Number(cpu.toFixed(1)), seconds, summary }));
ws.close();
browser.kill();
