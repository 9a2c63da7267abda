/** Part and chunk numbers, zero-padded so that keys sort in order. */
export const pad = (n: number) => String(n).padStart(5, '0')

/** Where every blob of a title lives: deterministic, so a task run twice writes the same keys. */
export const blobKeys = {
  prefix: (t: string) => `titles/${t}/`,
  source: (t: string) => `titles/${t}/source`,
  workPrefix: (t: string) => `titles/${t}/work/`,
  piece: (t: string, rendition: string, chunk: number) => `titles/${t}/work/${rendition}/${pad(chunk)}.mp4`,
  audioPiece: (t: string) => `titles/${t}/work/audio.mp4`,
  master: (t: string) => `titles/${t}/hls/master.m3u8`,
  rendition: (t: string, r: string) => `titles/${t}/hls/${r}/`,
  poster: (t: string) => `titles/${t}/poster.jpg`,
  thumbnails: (t: string) => `titles/${t}/thumbs/thumbnails.vtt`,
  thumbsPrefix: (t: string) => `titles/${t}/thumbs/`,
}
