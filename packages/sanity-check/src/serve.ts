// The dashboard's server: the page and its data, read from the runs folder at every request so new runs
// and new steps show up. It listens on 127.0.0.1 only: metrics and paths are nobody else's business.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { dashboardData, dashboardHtml } from "./dashboard_html.ts";
import { findRuns } from "./metrics.ts";

export interface DashboardServer {
  url: string;
  close(): Promise<void>;
}

export function startServer(runsDir: string, port: number): Promise<DashboardServer> {
  const server = http.createServer((req, res) => {
    const route = new URL(req.url ?? "/", "http://localhost").pathname;
    // browsers ask for one on their own; "none" keeps a 404 out of the page's console
    if (route === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    if (req.method !== "GET" || !["/", "/dashboard.html", "/data.json"].includes(route)) {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end(`not found: ${route}\n`);
      return;
    }
    let body: string;
    try {
      const data = dashboardData(runsDir, findRuns(runsDir));
      body = route === "/data.json" ? JSON.stringify(data) : dashboardHtml(data);
    } catch (err) {
      // an unreadable runs folder: say why instead of a blank page (a malformed line is only skipped)
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end(`${(err as Error).message}\n`);
      return;
    }
    const type = route === "/data.json" ? "application/json" : "text/html";
    res.writeHead(200, { "content-type": `${type}; charset=utf-8`, "cache-control": "no-store" }).end(body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const { port: actual } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${actual}/`,
        close: () => {
          // a browser keeps its connection open: end it, or close() would wait for it
          server.closeAllConnections();
          return new Promise<void>((done, fail) => server.close((err) => (err ? fail(err) : done())));
        },
      });
    });
  });
}
