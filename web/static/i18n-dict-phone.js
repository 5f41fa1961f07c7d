// Texts of the call screen on a phone, in French and English (merged by i18n-dict.js): the
// movable self view (call-self-view.js) and the front/back camera switch (call-camera-flip.js).
export const PHONE = {
  fr: {
    "selfview.move": "Déplacer mon image",
    "selfview.now_bottom_right": "Votre image est maintenant en bas à droite.",
    "selfview.now_bottom_left": "Votre image est maintenant en bas à gauche.",
    "selfview.now_top_left": "Votre image est maintenant en haut à gauche.",
    "selfview.now_top_right": "Votre image est maintenant en haut à droite.",
    "phone.switch_camera": "Changer de caméra",
  },
  en: {
    "selfview.move": "Move my picture",
    "selfview.now_bottom_right": "Your picture is now at the bottom right.",
    "selfview.now_bottom_left": "Your picture is now at the bottom left.",
    "selfview.now_top_left": "Your picture is now at the top left.",
    "selfview.now_top_right": "Your picture is now at the top right.",
    "phone.switch_camera": "Switch camera",
  },
};
