// Texts of the call screen: encryption code, chat, files, quality, devices, screen share, reconnection, in French and English (merged by i18n-dict.js).
export const CALL = {
  fr: {
  },
  en: {
  },
};
