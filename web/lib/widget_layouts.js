// Saved workflows store a node's widget values by position. When a release inserted a widget in the middle of a
// node, a workflow saved before it would load every later value into the wrong widget (and train other settings).
// This keeps the layouts of earlier releases and maps such values back by name. Pure: Node tests it (web_tests/),
// web/ltx_trainer_monitor.js applies it when the editor configures a node from a saved workflow.

// The all-settings Train LoRA node of the first release (38 widgets; "modalities" came in the middle with LTX-2,
// "memory_budget_gb" at the end). Later layouts only appended widgets, which positional loading already handles.
const TRAIN_LORA_FIRST_RELEASE = Object.freeze([
  "model", "model_path", "text_encoder", "vae", "steps", "learning_rate", "rank", "alpha", "dropout", "target_modules",
  "batch_size", "gradient_accumulation_steps", "optimizer_type", "scheduler_type", "warmup_steps", "weight_decay",
  "max_grad_norm", "enable_gradient_checkpointing", "first_frame_conditioning_p", "timestep_sampling_mode",
  "mixed_precision_mode", "quantization", "compile_with_inductor", "validation_prompts", "validation_interval",
  "validation_inference_steps", "validation_guidance_scale", "validation_seed", "checkpoint_interval", "keep_last_n",
  "num_dataloader_workers", "training_seed", "validation_width", "validation_height", "validation_frames",
  "num_processes", "job_name", "extra_config",
]);

export const EARLIER_LAYOUTS = Object.freeze({
  LTXTrainer_TrainLoRA: [TRAIN_LORA_FIRST_RELEASE],
});

// The saved values of an earlier layout by widget name, or null when `values` is in the current layout (or the node
// has no earlier layout of that length). A layout is told apart by its number of values.
export function earlierLayoutValues(nodeType, values) {
  if (!Array.isArray(values)) return null;
  const layout = (EARLIER_LAYOUTS[nodeType] || []).find((names) => names.length === values.length);
  if (!layout) return null;
  return Object.fromEntries(layout.map((name, i) => [name, values[i]]));
}

// The current widgets' values for a node loaded from an earlier layout: each widget its saved value by name, the
// widgets that layout did not have their defaults. `widgets`: [{name, default}] in the node's current order.
export function migratedWidgetValues(nodeType, values, widgets) {
  const byName = earlierLayoutValues(nodeType, values);
  if (!byName) return null;
  return widgets.map((w) => (Object.hasOwn(byName, w.name) ? byName[w.name] : w.default));
}
