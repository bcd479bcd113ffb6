// node --test web_tests/   (Node >= 20, no npm packages)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { earlierLayoutValues, migratedWidgetValues } from "../web/lib/widget_layouts.js";

// A workflow saved with the first release (tests/fixtures: the bundled example of that release, unchanged).
const firstRelease = JSON.parse(readFileSync(new URL("../tests/fixtures/first_release_train_from_a_dataset.json", import.meta.url)));
const saved = firstRelease.nodes.find((n) => n.type === "LTXTrainer_TrainLoRA").widgets_values;

test("a first-release Train LoRA node's values are read by name", () => {
  assert.equal(saved.length, 38);
  const byName = earlierLayoutValues("LTXTrainer_TrainLoRA", saved);
  assert.equal(byName.steps, 40);
  assert.equal(byName.batch_size, 1);
  assert.equal(byName.mixed_precision_mode, "no");
  assert.equal(byName.validation_width, 96);
  assert.equal(byName.job_name, "tiny example (dataset)");
  assert.equal(byName.extra_config, "");
});

test("widgets the earlier layout lacked get their defaults, the others their saved values", () => {
  // The current layout: "modalities" after "target_modules", "memory_budget_gb" last.
  const names = Object.keys(earlierLayoutValues("LTXTrainer_TrainLoRA", saved));
  const current = [...names.slice(0, 10), "modalities", ...names.slice(10), "memory_budget_gb"];
  const defaults = { modalities: "auto", memory_budget_gb: 0 };
  const values = migratedWidgetValues("LTXTrainer_TrainLoRA", saved, current.map((name) => ({ name, default: defaults[name] ?? null })));
  assert.equal(values.length, 40);
  assert.equal(values[current.indexOf("modalities")], "auto");
  assert.equal(values[current.indexOf("batch_size")], 1); // positional loading would have put 1 into modalities
  assert.equal(values[current.indexOf("memory_budget_gb")], 0);
  assert.equal(values[current.indexOf("job_name")], "tiny example (dataset)");
});

test("values in the current layout, or of another node, are left alone", () => {
  assert.equal(earlierLayoutValues("LTXTrainer_TrainLoRA", [...saved, "auto", 0]), null);
  assert.equal(earlierLayoutValues("LTXTrainer_TrainLoRA_v2", saved), null);
  assert.equal(earlierLayoutValues("LTXTrainer_TrainLoRA", undefined), null);
});
