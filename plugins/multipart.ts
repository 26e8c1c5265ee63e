import fp from 'fastify-plugin'
import multipart from '@fastify/multipart'

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
