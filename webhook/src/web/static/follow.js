// The job page's log follower: fills #log from the job's event stream (see docs/api.md).
const log = document.getElementById('log');
let cur = null;
function out() { if (!cur) { cur = document.createElement('pre'); log.appendChild(cur); } return cur; }
const es = new EventSource(log.dataset.src);
es.addEventListener('chunk', (e) => {
  const c = JSON.parse(e.data);
  const bottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  if (c.kind === 'phase_start') {
    const d = document.createElement('details'); d.open = true; d.className = 'phase';
    const s = document.createElement('summary'); s.textContent = c.data; d.appendChild(s);
    cur = document.createElement('pre'); d.appendChild(cur); log.appendChild(d);
  } else if (c.kind === 'phase_end') {
    const p = JSON.parse(c.data);
    const d = cur && cur.parentElement;
    if (d && d.tagName === 'DETAILS') {
      d.querySelector('summary').textContent = p.name + ' (' + (p.ms / 1000).toFixed(1) + ' s)' + (p.exit_code ? ' exit ' + p.exit_code : '');
      if (p.exit_code === 0) d.open = false;
    }
    cur = null;
  } else if (c.kind === 'note') {
    const n = document.createElement('div'); n.className = 'note'; n.textContent = c.data; log.appendChild(n); cur = null;
  } else {
    out().insertAdjacentHTML('beforeend', c.html);
  }
  if (bottom) window.scrollTo(0, document.body.scrollHeight);
});
es.addEventListener('end', () => { es.close(); document.getElementById('live').textContent = 'finished'; });
