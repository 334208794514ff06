// Posts the form to /fn/contact as JSON: every pair of a chosen colour and
// a chosen size is a preference.
document.getElementById("catalog").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  const colours = form.getAll("colour"), sizes = form.getAll("size");
  const preferences = [];
  for (const colour of colours) for (const size of sizes) preferences.push({ colour, size });
  const result = document.getElementById("result");
  result.textContent = "Sending...";
  try {
    const resp = await fetch("/fn/contact", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: form.get("name"), email: form.get("email"), preferences }),
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.ok) {
      result.textContent = "Thank you: your catalog is on its way by mail.";
    } else if (resp.status === 400) {
      result.textContent = "Please check your name, email and at least one colour and size.";
    } else if (resp.status === 429) {
      result.textContent = "Too many requests: please wait a moment.";
    } else {
      result.textContent = "Sorry, something went wrong: please try again later.";
    }
  } catch (e) {
    result.textContent = "Sorry, the request failed: please try again later.";
  }
});
