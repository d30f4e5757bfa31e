// GitHub's published OpenAPI description of api.github.com (the @octokit/openapi package), turned
// into JSON Schema validators of response bodies, and its documented examples.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import Ajv from 'ajv'
import addFormats from 'ajv-formats'

const require = createRequire(import.meta.url)
const spec = JSON.parse(fs.readFileSync(require.resolve('@octokit/openapi/generated/api.github.com.json'), 'utf8'))

// Strict about types and formats; the description's own extensions (x-github, ...) are ignored.
const ajv = new Ajv({ strict: false, allErrors: true })
addFormats(ajv)

// The value a local reference (`#/components/...`) points to.
function resolve(ref) {
  return ref
    .slice(2)
    .split('/')
    .reduce((node, key) => node[key.replace(/~1/g, '/').replace(/~0/g, '~')], spec)
}

const deref = (node) => (node && node.$ref ? deref(resolve(node.$ref)) : node)

/** The operation at `path` (as the description spells it, `/repos/{owner}/{repo}`) and `method`. */
export function operation(method, path) {
  const found = spec.paths[path]?.[method.toLowerCase()]
  if (!found) throw new Error(`no operation ${method} ${path} in the OpenAPI description`)
  return found
}

/** The documented response of an operation for `status`, with its $ref resolved. */
function response(method, path, status) {
  const found = deref(operation(method, path).responses[String(status)])
  if (!found) throw new Error(`${method} ${path} documents no ${status} response`)
  return found
}

/**
 * OpenAPI 3.0 schemas as JSON Schema: `nullable: true` becomes a union with null, and, when
 * `closed`, objects that list their properties admit no others, so that an answer with a
 * member GitHub does not document fails. (Not below `allOf`, whose parts each list some.)
 */
function toJsonSchema(node, closed) {
  if (Array.isArray(node)) return node.map((item) => toJsonSchema(item, closed))
  if (node === null || typeof node !== 'object') return node
  const out = {}
  for (const [key, value] of Object.entries(node)) {
    if (key === 'example' || key === 'examples' || key === 'nullable') continue
    if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value).map(([name, schema]) => [name, toJsonSchema(schema, closed)]),
      )
    } else {
      out[key] = toJsonSchema(value, closed && key !== 'allOf')
    }
  }
  if (closed && out.properties && out.additionalProperties === undefined) out.additionalProperties = false
  return node.nullable === true ? { anyOf: [out, { type: 'null' }] } : out
}

// The names of the component schemas `node` refers to, directly or not.
function referencedSchemas(node, found = new Set()) {
  if (Array.isArray(node)) node.forEach((item) => referencedSchemas(item, found))
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && value.startsWith('#/components/schemas/')) {
        const name = value.slice('#/components/schemas/'.length)
        if (!found.has(name)) {
          found.add(name)
          referencedSchemas(spec.components.schemas[name], found)
        }
      } else referencedSchemas(value, found)
    }
  }
  return found
}

const validators = new Map()

// Validates `body` against an OpenAPI schema; returns a list of problems (empty when it conforms).
function check(key, schema, body, closed) {
  if (!validators.has(key)) {
    const schemas = {}
    for (const name of referencedSchemas(schema)) schemas[name] = toJsonSchema(spec.components.schemas[name], closed)
    validators.set(key, ajv.compile({ ...toJsonSchema(schema, closed), components: { schemas } }))
  }
  const validator = validators.get(key)
  if (validator(body)) return []
  return validator.errors.map(
    (error) => `${error.instancePath || '/'} ${error.message} ${JSON.stringify(error.params)}`,
  )
}

/**
 * Checks `body` against the documented JSON response of an operation for `status`; returns a
 * list of problems (empty when it conforms). `closed`: no undocumented members either.
 */
export function validate(method, path, status, body, { closed = true } = {}) {
  const schema = response(method, path, status).content['application/json'].schema
  return check(`${method} ${path} ${status} ${closed}`, schema, body, closed)
}

/** Checks `body` against one of the description's component schemas (`basic-error`, ...). */
export function validateComponent(name, body, { closed = true } = {}) {
  return check(`#${name} ${closed}`, { $ref: `#/components/schemas/${name}` }, body, closed)
}

/** The first documented example of an operation's JSON response for `status`. */
export function example(method, path, status) {
  const examples = response(method, path, status).content['application/json'].examples
  return deref(Object.values(examples)[0]).value
}
