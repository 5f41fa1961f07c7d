// Evaluated in the page by audit.py: text contrast (WCAG AA) and control names.
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg && bg.a > 0) { layers.push(bg); if (bg.a >= 1) break; }
    }
    let color = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) color = blend(layer, color);
    return color;
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none" && !el.closest("[hidden]");
  };
  const problems = [];
  for (const el of document.querySelectorAll("body *")) {
    if (!visible(el) || el.closest(".visually-hidden")) continue;
    const hasText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (hasText && !(el.disabled)) {
      const s = getComputedStyle(el);
      const fg = parse(s.color);
      const bg = background(el);
      const L1 = lum(blend(fg, bg)), L2 = lum(bg);
      const ratio = (Math.max(L1, L2) + 0.05) / (Math.min(L1, L2) + 0.05);
      const size = parseFloat(s.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        problems.push(`contrast ${ratio.toFixed(2)} <${el.tagName.toLowerCase()} id=${el.id} class=${el.className}> "${el.textContent.trim().slice(0, 40)}"`);
      }
    }
    if (el.matches("input:not([type=hidden]), select, textarea, button, a[href], video[controls]")) {
      const name = (el.getAttribute("aria-label") || "").trim()
        || (el.labels && [...el.labels].map((l) => l.textContent).join("").trim())
        || (el.getAttribute("aria-labelledby") ? "x" : "")
        || (el.matches("button, a") ? el.textContent.trim() : "");
      if (!name) problems.push(`no accessible name: <${el.tagName.toLowerCase()} id=${el.id}>`);
    }
  }
  return problems;
}
