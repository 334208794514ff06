// hello-js: a Moat function in JavaScript, in the Workers model.
// Build and deploy: moat deploy --build examples/hello-js
// Try: curl 'http://127.0.0.1:8080/fn/hello-js/?name=you'
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method === "POST") {
      const body = await request.json().catch(() => null);
      if (!body || typeof body.name !== "string") {
        return Response.json({ error: "want {\"name\": \"...\"}" }, { status: 400 });
      }
      return Response.json({ greeting: greet(body.name) });
    }
    return Response.json({ greeting: greet(url.searchParams.get("name") || "world") });
  },
};

function greet(name) {
  return "hello, " + name.slice(0, 100);
}
