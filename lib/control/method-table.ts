// Every method a control server answers, by name. A method is one file under methods/.
import type { ControlMethod } from './control-method.js'
import { changesMethod } from './methods/changes.js'
import { flushMethod } from './methods/flush.js'
import { freezeMethod, thawMethod } from './methods/freeze.js'
import { markMethod, marksMethod, unmarkMethod } from './methods/marks.js'
import { inspectMethod } from './methods/inspect.js'
import { watchMethod } from './methods/watch.js'

export const CONTROL_METHODS: ReadonlyMap<string, ControlMethod> = new Map<string, ControlMethod>(
  [flushMethod, inspectMethod, watchMethod, markMethod, marksMethod, unmarkMethod, changesMethod, freezeMethod, thawMethod].map((m) => [m.name, m]),
)
