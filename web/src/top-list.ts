/**
 * The live top N as an ordered list whose rows move: each row is keyed by
 * user_id and keeps its element, so a rank change is animated from where the
 * row was to where it is now (FLIP: measure, reorder, invert, play), a new
 * score is highlighted, and a row that enters fades in. Under
 * prefers-reduced-motion nothing moves; changes are still marked by colour.
 */
import type { Row } from './api.js';

const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

export class TopList {
  private readonly items = new Map<string, { li: HTMLLIElement; score: number; rank: number }>();
  /** The player whose row is marked as theirs. */
  me: string | undefined;

  constructor(private readonly list: HTMLOListElement) {}

  clear(): void {
    this.items.clear();
    this.list.replaceChildren();
  }

  render(rows: readonly Row[]): void {
    const before = new Map<string, number>();
    for (const [id, { li }] of this.items) before.set(id, li.getBoundingClientRect().top);

    const seen = new Set<string>();
    const ordered: HTMLLIElement[] = [];
    for (const row of rows) {
      seen.add(row.user_id);
      let item = this.items.get(row.user_id);
      if (!item) {
        const li = document.createElement('li');
        li.className = 'row entering';
        li.dataset.user = row.user_id;
        li.innerHTML = '<span class="rank"></span><span class="name"></span><span class="score"></span>';
        item = { li, score: row.score, rank: row.rank };
        this.items.set(row.user_id, item);
      } else {
        if (item.score !== row.score) flash(item.li, 'changed');
        if (row.rank < item.rank) flash(item.li, 'up');
        else if (row.rank > item.rank) flash(item.li, 'down');
        item.score = row.score;
        item.rank = row.rank;
      }
      const { li } = item;
      li.dataset.rank = String(row.rank);
      li.classList.toggle('me', row.user_id === this.me);
      setText(li.querySelector('.rank')!, `#${row.rank}`);
      setText(li.querySelector('.name')!, row.name || row.user_id);
      setText(li.querySelector('.score')!, row.score.toLocaleString('en-US'));
      li.querySelector('.name')!.setAttribute('title', row.user_id);
      ordered.push(li);
    }
    for (const [id, { li }] of this.items) {
      if (!seen.has(id)) {
        li.remove();
        this.items.delete(id);
      }
    }
    // Reorder with the fewest moves: only elements out of place are moved.
    ordered.forEach((li, i) => {
      if (this.list.children[i] !== li) this.list.insertBefore(li, this.list.children[i] ?? null);
    });

    for (const li of ordered) {
      if (li.classList.contains('entering')) requestAnimationFrame(() => li.classList.remove('entering'));
    }
    if (reducedMotion.matches) return;
    for (const li of ordered) {
      const was = before.get(li.dataset.user!);
      if (was === undefined) continue;
      const dy = was - li.getBoundingClientRect().top;
      if (Math.abs(dy) < 1) continue;
      li.animate([{ transform: `translateY(${dy}px)` }, { transform: 'translateY(0)' }], { duration: 450, easing: 'cubic-bezier(.2,.8,.2,1)' });
    }
  }
}

function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** Adds a class for the length of its CSS animation (restarting it when already there). */
export function flash(el: HTMLElement, cls: string): void {
  el.classList.remove(cls);
  void el.offsetWidth;
  el.classList.add(cls);
  window.setTimeout(() => el.classList.remove(cls), 1600);
}
