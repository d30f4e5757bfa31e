// ES module entry: the same classes as the CommonJS build, re-exported by name.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const vfs = require('./dist/index.js')

export const {
  Mirage,
  Session,
  Stats,
  Dirent,
  memory,
  local,
  remote,
  isMirageError,
  setContentLimit,
  contentUsage,
} = vfs
export default vfs
