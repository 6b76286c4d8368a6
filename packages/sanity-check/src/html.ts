// Self-contained HTML pages: chart.js, the page's script and its data are all inlined, so a page opens
// from disk with no network.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);

/** chart.js's browser build, read from node_modules, without the source-map comment (a request for a file we do not ship). */
export function chartJsSource(): string {
  const dist = path.dirname(require.resolve("chart.js"));
  const source = fs.readFileSync(path.join(dist, "chart.umd.min.js"), "utf8");
  return source.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
}

/** A browser script shipped beside this file in pages/. */
export function pageScript(name: string): string {
  return fs.readFileSync(new URL(`./pages/${name}`, import.meta.url), "utf8");
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON for a <script type="application/json">: "<" escaped so no "</script>" in the data can end the tag early. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

export interface PageParts {
  title: string;
  style: string;
  body: string;
  /** Read by the page script from the element with id "data". */
  data: unknown;
  /** File name in pages/. */
  script: string;
}

export function htmlPage(parts: PageParts): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(parts.title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #111; }
${parts.style}
</style>
</head>
<body>
${parts.body}
<script id="data" type="application/json">${jsonForScript(parts.data)}</script>
<script>${chartJsSource()}</script>
<script>${pageScript(parts.script)}</script>
</body>
</html>
`;
}
