// inventory-js: the widget story's inventory-admin, in JavaScript. Staff
// set and read the stock of each widget: PUT /COLOUR/SIZE with
// {"stock":N,"price":"9.90 EUR"}, GET / for all. It uses lodash from npm
// (installed by scripts/npm-examples; the lock file is committed and
// named in moat.yaml, so deploy inventories it and checks its advisories).
import pick from "lodash/pick.js";
import isInteger from "lodash/isInteger.js";
import isString from "lodash/isString.js";

const item = /^\/(red|green|blue|yellow|black|white)\/(tiny|small|big|huge)$/;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const inventory = env.KV.inventory;
    if (request.method === "PUT") {
      if (!item.test(url.pathname)) return new Response("PUT /COLOUR/SIZE", { status: 404 });
      let body;
      try {
        body = await request.json();
      } catch {
        return bad();
      }
      // Only the two fields, each of the right kind: nothing else of the
      // request reaches the store.
      if (body === null || typeof body !== "object" || Object.keys(body).some((k) => k !== "stock" && k !== "price")) return bad();
      const s = pick(body, ["stock", "price"]);
      if (!isInteger(s.stock) || s.stock < 0 || !isString(s.price) || s.price.length > 20) return bad();
      await inventory.put(url.pathname.slice(1), JSON.stringify(s));
      console.info("stock set", url.pathname, s.stock);
      return new Response(null, { status: 204 });
    }
    if (request.method === "GET") {
      const out = {};
      const { keys } = await inventory.list("");
      for (const { name } of keys) {
        const v = await inventory.get(name, "json").catch(() => null);
        if (v) out[name] = v;
      }
      return Response.json(out);
    }
    return new Response("GET or PUT", { status: 405 });
  },
};

function bad() {
  return new Response('want {"stock":N,"price":"..."}', { status: 400 });
}
