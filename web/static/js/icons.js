// Line icons (24×24, stroked with the current colour), so that the page does not depend on the
// system having an emoji font.

const svg = (body) => `<svg class="icon" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${body}</svg>`;

const micBody = '<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5 11a7 7 0 0 0 14 0M12 18v3"/>';
const camBody = '<rect x="3" y="6" width="13" height="12" rx="2"/><path d="m16 10 5-3v10l-5-3z"/>';

export const icons = {
  mic: svg(micBody),
  micOff: svg(micBody + '<path d="M3 3l18 18"/>'),
  cam: svg(camBody),
  camOff: svg(camBody + '<path d="M3 3l18 18"/>'),
  screen: svg('<rect x="3" y="4" width="18" height="12" rx="2"/><path d="M8 20h8M12 16v4"/>'),
  leave: '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path fill="currentColor" d="M12 8.5c-3.9 0-7.4 1.3-9.6 3.4a1.3 1.3 0 0 0-.1 1.8l1.9 2.3c.4.5 1.1.6 1.7.3l2.6-1.4c.5-.3.8-.8.7-1.4l-.2-1.9a12 12 0 0 1 6 0l-.2 1.9c-.1.6.2 1.1.7 1.4l2.6 1.4c.6.3 1.3.2 1.7-.3l1.9-2.3a1.3 1.3 0 0 0-.1-1.8C19.4 9.8 15.9 8.5 12 8.5z"/></svg>',
  bot: svg('<rect x="5" y="8" width="14" height="11" rx="3"/><path d="M12 4v4M9 13h.01M15 13h.01"/>'),
};
