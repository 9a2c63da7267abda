/**
 * The page a person sees at http://localhost:8080 until the web app lands: what is running, read
 * live from /api/v1/system and /readyz.
 */
export function statusPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>reel</title>
<style>
body{margin:0;background:#141414;color:#e5e5e5;font:16px/1.5 system-ui,sans-serif}
main{max-width:760px;margin:0 auto;padding:48px 24px}
h1{color:#e50914;font-size:48px;margin:0 0 8px;letter-spacing:-1px}
table{border-collapse:collapse;width:100%;margin:16px 0}
td,th{text-align:left;padding:8px 12px;border-bottom:1px solid #333}
.ok{color:#46d369}.bad{color:#e50914}a{color:#e5e5e5}
</style></head>
<body><main>
<h1>reel</h1>
<p>What this reel process runs, and whether its engines answer.</p>
<p><a href="/">Web app</a> · <a href="/api/docs">API documentation</a> · <a href="/metrics">metrics</a> · <a href="/readyz">readiness</a></p>
<table id="status"><tr><th>part</th><th>engine</th><th>state</th></tr></table>
<p id="roles"></p>
<p id="reco"></p>
<script>
Promise.all([fetch('/api/v1/system').then(r=>r.json()),fetch('/readyz').then(r=>r.json())]).then(([sys,ready])=>{
  const t=document.getElementById('status')
  for (const [port,kind] of Object.entries(sys.adapters)){
    const state=ready.checks[port]||'unknown', row=t.insertRow()
    row.insertCell().textContent=port; row.insertCell().textContent=kind
    const c=row.insertCell(); c.textContent=state; c.className=state==='ok'?'ok':'bad'
  }
  document.getElementById('roles').textContent='Services in this process: '+sys.roles.join(', ')+' · version '+sys.version
})
fetch('/api/v1/reco/status').then(r=>r.ok?r.json():null).then((reco)=>{
  if(!reco) return
  const run=reco.lastRun, el=document.getElementById('reco')
  el.textContent='Recommendations: '+(run?'trained '+run.finishedAt+' on '+run.report.profiles+' profiles × '+run.report.titles+' titles ('+run.report.algorithm+')':'not trained yet (home pages use live rows)')+(reco.training?' · training now':'')+' · '+reco.titles+' titles known'
}).catch(()=>{})
</script>
</main></body></html>`
}
