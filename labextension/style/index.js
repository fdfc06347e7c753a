import './base.css';
import './schema.css';
