import type { StepReport } from '../run-context.js'
import type { SafetyVerdict } from '../types.js'

/** A safety verdict as a step record: the text checked (what the stage passes on is not changed by it), the decision, who made it, and what it matched. */
export function safetyReport (verdict: SafetyVerdict, checked: string): StepReport {
  return {
    status: verdict.allowed ? 'completed' : 'blocked',
    output: checked,
    provider: verdict.provider,
    model: verdict.model,
    decision: {
      allowed: verdict.allowed,
      reason: verdict.reason,
      codes: verdict.codes,
      fallback_used: verdict.fallback_used === true
    },
    ...(verdict.details !== undefined ? { details: verdict.details } : {})
  }
}
