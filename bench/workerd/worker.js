// The benchmarks' JSON handler as a workerd (Cloudflare Workers) ES module
// worker, doing what the Go handlers do (bench/bare's /json and the reactor
// guest's /json in internal/testwasm/testdata/reactor): a body
// {"name": string, "items": [number...]} answers 200 application/json
// {"count": len(items), "hello": name, "sum": sum(items)}, with the trailing
// newline of Go's json.Encoder; a body that is not such JSON answers 400.
// As in Go, a missing or null field counts as empty and unknown fields are
// ignored.
const bad = () => new Response("bad JSON\n", { status: 400 });

export default {
  async fetch(request) {
    if (new URL(request.url).pathname !== "/json") {
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
