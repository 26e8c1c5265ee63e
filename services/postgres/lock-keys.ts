/**
 * The first key of every advisory lock runstore takes (the second is the
 * thing locked), one per use, so that no two uses ever wait on each other.
 * Other applications of the same database would have to pick other numbers.
 */
export const LOCK_SPACE = {
  /** (migrations, 0): held while migrating */
  migrations: 0x72730001,
  /** (indexSession, session id): held while a run index is open */
  indexSession: 0x72730002,
  /** (queueSlot, hashtext('<backend>:<slot>')): held by the connection of a generation running on that slot */
  queueSlot: 0x72730003,
  /** (queueInstance, instance id): held while an instance's shared queue is open; its rows in queue_places count only then */
  queueInstance: 0x72730004
} as const
