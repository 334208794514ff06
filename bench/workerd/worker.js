// The benchmarks' handlers as a workerd (Cloudflare Workers) ES module
// worker, doing what the Go handlers do (bench/bare's /json and /hello, the
// reactor guest's /json in internal/testwasm/testdata/reactor).
//
// POST /json: a body {"name": string, "items": [number...]} answers 200
// application/json {"count": len(items), "hello": name, "sum": sum(items)},
// with the trailing newline of Go's json.Encoder; a body that is not such
// JSON answers 400. As in Go, a missing or null field counts as empty and
// unknown fields are ignored.
const bad = () => new Response("bad JSON\n", { status: 400 });

// GET /hello?name=N answers examples/hello's {"greeting": "hello, N"}
// (trimmed, "world" when empty, at most 100 bytes: the names the benchmark
// sends are ASCII).
//
// Moat serves this same file as a JavaScript function (bench/moatbench
// bundles and deploys it as /fn/js), so the two runtimes run one script.
const hello = (url) => {
  let name = (url.searchParams.get("name") ?? "").trim() || "world";
  if (name.length > 100) name = name.slice(0, 100);
  return Response.json({ greeting: "hello, " + name });
};

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/hello") return hello(url);
    if (url.pathname !== "/json") {
      return new Response("404 page not found\n", { status: 404 });
    }
    let v;
    try {
      v = (await request.json()) ?? {};
    } catch {
      return bad();
    }
    if (typeof v !== "object" || Array.isArray(v)) return bad();
    const name = v.name ?? "";
    const items = v.items ?? [];
    if (typeof name !== "string" || !Array.isArray(items)) return bad();
    let sum = 0;
    for (const x of items) {
      if (x !== null && typeof x !== "number") return bad();
      sum += x ?? 0;
    }
    // Keys in sorted order, as Go's encoding/json writes a map.
    return new Response(JSON.stringify({ count: items.length, hello: name, sum }) + "\n", {
      headers: { "Content-Type": "application/json" },
    });
  },
};
