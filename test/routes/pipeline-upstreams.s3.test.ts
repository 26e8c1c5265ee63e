// The pipeline against its upstreams (LLM, ComfyUI, OpenRouter, Replicate), the same file, with the runs in an S3 bucket (STORAGE_DRIVER=s3): what they deliver goes up as objects.
import { useS3Store } from '../s3-env.js'

useS3Store()
await import('./pipeline-upstreams.test.js')
