// Every method a control server answers, by name. A method is one file under methods/.
import type { ControlMethod } from './control-method.js'
import { flushMethod } from './methods/flush.js'
import { inspectMethod } from './methods/inspect.js'
import { watchMethod } from './methods/watch.js'

export const CONTROL_METHODS: ReadonlyMap<string, ControlMethod> = new Map<string, ControlMethod>(
  [flushMethod, inspectMethod, watchMethod].map((m) => [m.name, m]),
)
