import t from 'tap'
import { pdfText } from '../../../services/export/pdf.js'

t.test('text as the PDF standard fonts draw it (WinAnsi)', async (t) => {
  t.equal(pdfText('Grüße aus Köln: süße Äpfel, Öl, Straße'), 'Grüße aus Köln: süße Äpfel, Öl, Straße', 'German as it is')
  t.equal(pdfText('„Zitat“ – 5 € … ‚ok‘ • Œuvre ™'), '„Zitat“ – 5 € … ‚ok‘ • Œuvre ™', 'the WinAnsi characters beyond Latin-1')
  t.equal(pdfText('Mu\u0308ller'), 'Müller', 'a decomposed umlaut is composed')
  t.equal(pdfText('Кошка 🐱 中'), '????? ? ?', 'one ? per character the font lacks, an emoji too')
  t.equal(pdfText('a\r\nb\rc\nd\te'), 'a\nb\nc\nd e', 'line breaks kept, a tab is a space')
  t.equal(pdfText('x\u0000\u0007\u007f\u0085\u009fy'), 'xy', 'control characters dropped')
})
