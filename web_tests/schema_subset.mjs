// A JSON Schema validator for the subset ltx_train_lib/events.py generates (no npm packages here): $ref into
// $defs, oneOf, type (one or a list), const, enum, minimum, required, properties, additionalProperties
// (false or a schema) and items. A keyword outside that subset throws, so a generator change that this validator
// would silently ignore fails the tests instead of passing them.

const ANNOTATIONS = new Set(["$schema", "$id", "title", "description", "default", "examples", "discriminator", "$defs"]);
const CHECKED = new Set([
  "$ref", "oneOf", "type", "const", "enum", "minimum", "required", "properties", "additionalProperties", "items",
]);

function typeOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value; // string, boolean, object
}

function hasType(value, type) {
  const actual = typeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

function resolve(root, ref) {
  if (!ref.startsWith("#/")) throw new Error(`unsupported $ref ${ref}`);
  let node = root;
  for (const part of ref.slice(2).split("/")) {
    node = node?.[part];
    if (node === undefined) throw new Error(`$ref ${ref} points nowhere`);
  }
  return node;
}

/** Errors of `value` against `schema` (a sub-schema of `root`), as "path: problem" strings; [] when valid. */
export function validate(value, schema, root = schema, path = "$") {
  for (const key of Object.keys(schema)) {
    if (!ANNOTATIONS.has(key) && !CHECKED.has(key)) throw new Error(`schema keyword ${key} at ${path} is not supported`);
  }
  if (schema.$ref) return validate(value, resolve(root, schema.$ref), root, path);
  if (schema.oneOf) {
    const results = schema.oneOf.map((branch) => validate(value, branch, root, path));
    const matched = results.filter((r) => r.length === 0).length;
    if (matched === 1) return [];
    if (matched > 1) return [`${path}: matches ${matched} branches of oneOf`];
    // With a discriminator, report the one branch the value claims to be, not every branch's complaints.
    const d = schema.discriminator;
    const target = d && value && typeof value === "object" ? d.mapping?.[value[d.propertyName]] : undefined;
    if (target) return validate(value, { $ref: target }, root, path);
    if (d) return [`${path}.${d.propertyName}: ${JSON.stringify(value?.[d.propertyName])} is none of ${Object.keys(d.mapping)}`];
    return [`${path}: matches no branch of oneOf`, ...results.flat()];
  }
  const errors = [];
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => hasType(value, t))) {
      return [`${path}: expected ${types.join(" or ")}, got ${typeOf(value)} ${JSON.stringify(value)}`];
    }
  }
  if ("const" in schema && value !== schema.const) errors.push(`${path}: expected ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${path}: ${JSON.stringify(value)} is none of ${schema.enum}`);
  if (schema.minimum !== undefined && typeof value === "number" && value < schema.minimum) {
    errors.push(`${path}: ${value} is below the minimum ${schema.minimum}`);
  }
  if (typeOf(value) === "object") {
    for (const name of schema.required || []) {
      if (!(name in value)) errors.push(`${path}: missing required field ${name}`);
    }
    const props = schema.properties || {};
    for (const [name, v] of Object.entries(value)) {
      if (name in props) errors.push(...validate(v, props[name], root, `${path}.${name}`));
      else if (schema.additionalProperties === false) errors.push(`${path}: field ${name} is not in the schema`);
      else if (typeof schema.additionalProperties === "object") {
        errors.push(...validate(v, schema.additionalProperties, root, `${path}.${name}`));
      }
    }
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((v, i) => errors.push(...validate(v, schema.items, root, `${path}[${i}]`)));
  }
  return errors;
}
