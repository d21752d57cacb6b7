import { readFileSync } from 'node:fs';

/** CPU time (ms, user + system, all threads) of a process and its descendants so far, from /proc; NaN where there is none. */
export function treeCpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    for (const c of children === '' ? [] : children.split(' ')) ms += treeCpuMs(Number(c));
    return ms;
  } catch {
    return NaN;
  }
}
