// The sanity check's page: draws the two charts whose configurations the generator embedded as JSON.
/* global Chart, document */
"use strict";

const { loss, diff } = JSON.parse(document.getElementById("data").textContent);

// Same labels as the PNG: only powers of ten on the log axis.
function powerOfTenLabel(value) {
  const exponent = Math.log10(Number(value));
  return Math.abs(exponent - Math.round(exponent)) < 1e-9 ? `1e${Math.round(exponent)}` : "";
}

for (const [id, config] of [
  ["loss", loss],
  ["diff", diff],
]) {
  const options = config.options;
  options.responsive = true;
  options.maintainAspectRatio = false;
  // hovering a step shows every layout's value there
  options.interaction = { mode: "index", intersect: false };
  const y = options.scales.y;
  if (y.type === "logarithmic") {
    // label and grid line only at powers of ten: the minor ticks would crowd the axis
    y.ticks.callback = powerOfTenLabel;
    y.grid = { color: (c) => (powerOfTenLabel(c.tick.value) ? "#ddd" : "transparent") };
  }
  new Chart(document.getElementById(id), config);
}
