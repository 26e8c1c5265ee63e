import yauzl from 'yauzl'

/** Every entry of a ZIP, by name, in the archive's order; rejects for anything that is not a whole ZIP. */
export async function unzip (zip: Buffer): Promise<Map<string, Buffer>> {
  const entries = new Map<string, Buffer>()
  const file = await new Promise<yauzl.ZipFile>((resolve, reject) => yauzl.fromBuffer(zip, { lazyEntries: true }, (err, z) => err ? reject(err) : resolve(z)))
  await new Promise<void>((resolve, reject) => {
    file.on('entry', (entry: yauzl.Entry) => {
      file.openReadStream(entry, (err, stream) => {
        if (err) return reject(err)
        const chunks: Buffer[] = []
        stream.on('data', (c: Buffer) => chunks.push(c))
        stream.on('error', reject)
        stream.on('end', () => { entries.set(entry.fileName, Buffer.concat(chunks)); file.readEntry() })
      })
    })
    file.on('end', resolve)
    file.on('error', reject)
    file.readEntry()
  })
  return entries
}
