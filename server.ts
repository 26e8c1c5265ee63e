import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

const config = loadConfig()
const app = await buildApp(config)

closeWithGrace({ delay: 10000 }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'closing after an error')
  else app.log.info({ signal }, 'closing')
  await app.close()
})

await app.listen({ port: config.PORT, host: config.HOST })
const { ffmpeg } = app.thumbnails
app.log.info({ ffmpeg }, ffmpeg === null ? 'no ffmpeg on PATH: video thumbnails are a neutral poster' : 'video thumbnails show the first frame, taken by ffmpeg')
