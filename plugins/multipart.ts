import fp from 'fastify-plugin'
import multipart from '@fastify/multipart'

/**
 * Multipart uploads. Registered by the routes that take them (routes/runs.ts),
 * not at the root: the plugin adds an onRequest and an onResponse hook to
 * every route of the context it lands in.
 */
export default fp(async function multipartPlugin (app) {
  await app.register(multipart, {
    limits: {
      // One byte over the limit reaches the storage, which refuses it with 413
      // the same way for uploads, data URIs and URLs.
      fileSize: app.config.MAX_UPLOAD_BYTES + 1,
      files: 1,
      fields: 10,
      fieldSize: 64 * 1024
    }
  })
}, { name: 'multipart', dependencies: ['config'] })
