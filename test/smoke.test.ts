import t from 'tap'
import { randomUUID } from 'node:crypto'
t.equal(typeof randomUUID(), 'string')
