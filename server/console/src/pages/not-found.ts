import { h } from '../dom.js';
import type { Page } from '../page.js';
import { pageHeading } from '../ui.js';

export const notFoundPage: Page = (ctx) => {
  ctx.root.append(pageHeading('Page not found'), h('p', null, 'There is no console page at this address. ', h('a', { href: '/' }, 'Go to the overview'), '.'));
};
