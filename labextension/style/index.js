import './base.css';
import './schema.css';
import './plan.css';
